"""Compare the "backprop ninja" character MLP: every atomic step's gradient, by hand vs autograd.

Each of the 19 intermediates of the forward (emb ... logprobs) and its gradient is compared
tensor by tensor (``inter.*``, ``grad.inter.*``), as are the loss, the seven parameter
gradients and the two running-statistics buffers. Witness: ``BuiltinCharMLP``, the same model
from torch built-ins (``F.embedding``, ``F.batch_norm``, ``F.cross_entropy``). The
``lecture-bessel`` cases run the lecture's own variant (``bessel=True``: the batch variance
normalized by 1/(B-1)), which has no built-in witness.

Run: ``python -m compare.layers.mlp`` -- prints the report and the lecture's own table
(``name | exact | approximate | maxdiff``) of the gradients in float64.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compare.concept import Bench, Case, Concept, perturb_parameters, randint
from compare.tolerances import Tolerance
from numpy_impl.layers import mlp as numpy_twin
from torch_impl.layers import mlp as torch_twin


class BuiltinCharMLP(torch_twin.CharMLP):
    """The same model (constructor, parameters, buffers) from torch's built-in functions."""

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = idx.shape[0]
        emb = F.embedding(idx, self.C)                              # (B, T, E)
        hprebn = emb.view(n, -1) @ self.W1 + self.b1                # (B, H)
        # F.batch_norm wants (H,) vectors: views share storage, so the running
        # buffers are updated in place and the gradients reach bngain and bnbias
        hpreact = F.batch_norm(hprebn, self.bnmean_running.view(-1),
                               self.bnvar_running.view(-1), self.bngain.view(-1),
                               self.bnbias.view(-1), training=self.training,
                               momentum=self.momentum, eps=self.eps)  # (B, H)
        logits = torch.tanh(hpreact) @ self.W2 + self.b2            # (B, V)
        return F.cross_entropy(logits, targets)                     # ()


def _prepare(module: torch.nn.Module, rng: np.random.Generator) -> None:
    """Perturb the parameters and give the running statistics non-trivial values, so that
    eval mode's use of them (and train mode's update of them) shows in every number."""
    perturb_parameters(module, rng)
    shape = tuple(module.bnmean_running.shape)
    module.bnmean_running.copy_(torch.from_numpy(rng.normal(0.0, 0.5, shape)))
    module.bnvar_running.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, shape)))


# In train mode dL/db1 is zero in exact arithmetic: batchnorm subtracts the batch mean, which
# cancels any shift b1 adds. Every side returns rounding noise for it, which no relative
# tolerance can compare, so b1 alone is held to an absolute bound a few times the noise seen
# over seeds 0-59 (benchmarks/tolerance_audit.py) in any check: <= 8.9e-16 in float64, 8.3e-7
# in float32, 8.9e-10 from finite differences (eps |L| / h). All far below any real gradient
# here (|dhprebn| ~ 1e-2): a b1 that moves fails.
_B1_IS_ZERO = {"float64:grad.param.b1": Tolerance(rtol=1e-10, atol=1e-14),
               "float32:grad.param.b1": Tolerance(rtol=1e-4, atol=3e-6),
               "fd:grad.param.b1": Tolerance(rtol=1e-6, atol=1e-8)}


def _case(name: str, batch: int, train: bool = True, **init) -> Case:
    sizes = dict(vocab_size=27, block_size=3, n_embd=10, n_hidden=64) | init
    # F.batch_norm normalizes with the biased 1/B only: the Bessel variant has no witness
    builtin = None if init.get("bessel") else BuiltinCharMLP
    return Case(name, numpy=numpy_twin.CharMLP, torch=torch_twin.CharMLP,
                builtin=builtin, init=sizes, train=train, prepare=_prepare,
                tolerance=_B1_IS_ZERO if train else {},
                inputs=dict(idx=randint(sizes["vocab_size"], batch, sizes["block_size"]),
                            targets=randint(sizes["vocab_size"], batch)))


CONCEPT = Concept(
    name="mlp",
    family="layers",
    summary="Karpathy's character MLP (makemore 4): emb-linear-batchnorm-tanh-linear-CE",
    compares="loss; all 19 intermediates and 18 of their grads (logit_maxes is detached: no "
             "grad); grads of C, W1, b1, W2, b2, bngain, bnbias; running buffers",
    witness="F.embedding, F.batch_norm, F.cross_entropy",
    bench=Bench("CharMLP (block 3, n_embd 10, n_hidden 200) on a batch of 256 contexts",
                cases=(_case("bench", 256, n_hidden=200),)),
    cases=[
        _case("train", 32, momentum=0.1),
        _case("eval", 32, train=False),
        _case("lecture-sizes", 32, n_hidden=200),
        # With two rows batchnorm sends each feature to +-sqrt(var / (var + eps)): the gradient
        # into hprebn is the O(eps / var) remainder of a cancellation of O(1) terms, so at
        # eps=1e-5 float32 keeps ~2 digits of it (both twins alike). eps=1e-2 keeps this
        # case about the smallest batch (unbiased factor B/(B-1) = 2), not that cancellation.
        _case("batch-of-2", 2, momentum=0.1, eps=1e-2),
        # The lecture's own code normalizes with Bessel's 1/(B-1) (torch: 1/B); this variant
        # lets its solution be checked exactly (verify --convention bessel-variance).
        _case("lecture-bessel", 32, momentum=0.1, bessel=True),
        _case("lecture-bessel-eval", 32, train=False, bessel=True),
    ],
)


# the order of the lecture's cmp(...) lines: backward through the network
_LECTURE_ORDER = ["logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits",
                  "logit_maxes", "logits", "h", "W2", "b2", "hpreact", "bngain", "bnbias",
                  "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff", "bnmeani", "hprebn",
                  "embcat", "W1", "b1", "emb", "C"]


def lecture_table(report, case: str = "train", dtype: str = "float64") -> str:
    """The lecture's ``cmp`` lines: each gradient, exact / approximate (within tolerance) /
    max abs difference, NumPy by hand against torch autograd, in backward order."""
    rows = {}
    for d in report.diffs:
        if (d.case, d.dtype, d.check) == (case, dtype, "numpy-vs-torch") \
                and d.name.startswith(("grad.inter.", "grad.param.")):
            name = d.name.split(".", 2)[2]
            rows[name] = (f"{name:15s} | exact: {str(d.exact):5s} | "
                          f"approximate: {str(d.passed):5s} | maxdiff: {d.max_abs:.3g}")
    lines = [f"{case}, {dtype}: NumPy by hand vs torch autograd"]
    lines += [rows[name] for name in _LECTURE_ORDER if name in rows]
    lines.append("(logit_maxes is a constant shift: no gradient flows through it)")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    from compare.cli import main
    from compare.runner import run_concept
    code = main(["run", CONCEPT.name, *sys.argv[1:]])  # the table (and --json, --plots, ...)
    if code != 2 and "--json" not in sys.argv:
        print(lecture_table(run_concept(CONCEPT, dtypes=["float64"])))
    sys.exit(code)
