"""Compare direct preference optimization (DPO): the loss from logits through per-token
log-softmax and a response mask, then a short training run of a bigram policy.

Gradient cases (the module runner): ``DPOLoss`` on a concatenated batch (B chosen rows, then B
rejected rows) of policy and reference logits: the mean loss and both implicit-reward vectors
(``out.0``, ``out.1``, ``out.2``); the gradient of the policy logits (and of the reference
logits: the derivative exists, though training never uses it); by hand vs autograd, vs
central finite differences, and vs ``BuiltinDPOLoss``. torch has no DPO: the witness is the
same objective from ``F.log_softmax``, ``Tensor.gather`` and ``F.logsigmoid`` (the IPO case
squares h - 1/(2β) directly); the tests add the DPO paper's formula, -log σ(β h), written out
in torch on the same tensors. Features: β, label smoothing (conservative DPO), IPO, a pair of
one, confident (large) logits; every case's mask has a prompt, a response and padding, so the
gradient is checked to be zero outside the responses.

Training cases (``options["steps"]``): a bigram policy over a toy vocabulary learns that
chosen responses use the tokens 1..3 and rejected ones 4..7, from identical weights (the
reference is a frozen copy) on identical batches: the loss and both implicit rewards at every
step (``step{k}/loss``, ``step{k}/chosen_rewards``, ``step{k}/rejected_rewards``) and the table
after the last step. The chosen-minus-rejected margin grows (a test asserts it).

Benchmark size: 16 pairs, responses of 64 tokens, vocabulary 512 ((32, 64, 512) logits).

Run: ``python -m compare.alignment.dpo [--steps N] [run options]``: the comparison, then both
twins trained side by side in float32, printing the loss, the margin and the implicit rewards.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from compare.cli.script import comparison_then_demo
from compare.concept import Bench, Case, Concept, Outcome, Trial, randint, randn
from compare.runner import run_module, torch_module
from compare.tolerances import Tolerance
from numpy_impl.alignment import dpo as numpy_twin
from numpy_impl.training import optimizers as numpy_optim
from torch_impl.alignment import dpo as torch_twin

GOOD_TOKENS = (1, 2, 3)          # chosen responses use these; rejected ones the rest of 1..V-1
PAD = 0


class BuiltinDPOLoss(nn.Module):
    """The same objective from torch's built-in functions: ``F.log_softmax``, ``gather``,
    ``F.logsigmoid`` (-log σ(βh) smoothed), IPO as the plain square."""

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.0,
                 loss_type: str = "sigmoid") -> None:
        super().__init__()
        self.beta, self.label_smoothing, self.loss_type = beta, label_smoothing, loss_type

    def forward(self, policy_logits, reference_logits, labels, loss_mask):
        def logps(logits):
            per_token = F.log_softmax(logits, dim=-1).gather(2, labels[..., None])[..., 0]
            return (per_token * loss_mask).sum(1)

        b = policy_logits.shape[0] // 2
        pi, ref = logps(policy_logits), logps(reference_logits)
        h = (pi[:b] - pi[b:]) - (ref[:b] - ref[b:])
        if self.loss_type == "ipo":
            losses = (h - 1 / (2 * self.beta)) ** 2
        else:
            losses = -(1 - self.label_smoothing) * F.logsigmoid(self.beta * h) \
                - self.label_smoothing * F.logsigmoid(-self.beta * h)
        return (losses.mean(), self.beta * (pi[:b] - ref[:b]).detach(),
                self.beta * (pi[b:] - ref[b:]).detach())


# --- data ----------------------------------------------------------------------------------------
def response_mask(rows: int, steps: int) -> Any:
    """A draw: masks (rows, steps) of prompt (False), response (True), padding (False), with a
    prompt of at least one position and a response of at least one token."""
    def draw(rng: np.random.Generator) -> np.ndarray:
        start = rng.integers(1, steps, size=rows)                      # prompt positions
        length = rng.integers(1, steps - start + 1)                    # 1 .. steps - start
        t = np.arange(steps)
        return (t >= start[:, None]) & (t < (start + length)[:, None])
    return draw


def preference_sequences(n_pairs: int, vocab_size: int = 8, prompt_len: int = 2,
                         max_response: int = 5, seed: int = 0):
    """Pairs of token sequences [prompt, response, padding]: chosen responses of GOOD_TOKENS,
    rejected ones of the other non-pad tokens, lengths 2..max_response. Returns chosen and
    rejected sequences (n_pairs, prompt_len + max_response) and their response lengths."""
    rng = np.random.default_rng(seed)
    bad = np.array([v for v in range(1, vocab_size) if v not in GOOD_TOKENS])
    good = np.array(GOOD_TOKENS)
    width = prompt_len + max_response
    prompt = rng.integers(1, vocab_size, size=(n_pairs, prompt_len))
    sequences, lengths = [], []
    for pool in (good, bad):
        length = rng.integers(2, max_response + 1, size=n_pairs)       # (N,)
        response = pool[rng.integers(0, len(pool), size=(n_pairs, max_response))]
        response = np.where(np.arange(max_response) < length[:, None], response, PAD)
        sequences.append(np.concatenate([prompt, response], axis=1))   # (N, width)
        lengths.append(length)
    assert sequences[0].shape[1] == width
    return sequences[0], sequences[1], lengths[0], lengths[1]


def concatenated_batch(chosen: np.ndarray, rejected: np.ndarray, chosen_len: np.ndarray,
                       rejected_len: np.ndarray, prompt_len: int):
    """tokens, labels, loss_mask (2B, width - 1): the chosen rows first. Position t predicts
    token t + 1; it counts when that token is one of the response's."""
    seq = np.concatenate([chosen, rejected])                           # (2B, width)
    length = np.concatenate([chosen_len, rejected_len])                # (2B,)
    t = np.arange(seq.shape[1] - 1)
    mask = (t + 1 >= prompt_len) & (t + 1 < prompt_len + length[:, None])
    return seq[:, :-1], seq[:, 1:], mask


# --- training -----------------------------------------------------------------------------------
def _batches(case: Case, trial: Trial) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    o = case.options
    chosen, rejected, c_len, r_len = preference_sequences(o["n_pairs"], o["vocab_size"],
                                                          o["prompt_len"], o["max_response"],
                                                          seed=trial.seed)
    rows = trial.rng().integers(0, o["n_pairs"], size=(o["steps"], o["batch"]))
    return [concatenated_batch(chosen[r], rejected[r], c_len[r], r_len[r], o["prompt_len"])
            for r in rows]


def _policy_state(case: Case, trial: Trial) -> dict[str, np.ndarray]:
    """The torch policy's own initialization (seeded), in the trial's data."""
    torch.manual_seed(trial.seed)
    policy = torch_twin.BigramPolicy(case.options["vocab_size"]).double()
    return {k: trial.cast(v.numpy().copy()) for k, v in policy.state_dict().items()}


def train_numpy(loss_fn: Any, state: dict[str, np.ndarray], batches: list, options: dict,
                dtype: np.dtype) -> dict[str, np.ndarray]:
    policy, reference = (numpy_twin.BigramPolicy(options["vocab_size"]).to(dtype)
                         for _ in range(2))
    policy.load_state_dict(state)
    reference.load_state_dict(state)
    opt = getattr(numpy_optim, options["optimizer"])(policy.parameters(), **options["opt"])
    values = {}
    for k, batch in enumerate(batches, start=1):
        loss, chosen, rejected = numpy_twin.train_step(policy, reference, loss_fn, opt, *batch)
        values[f"step{k}/loss"] = np.asarray(loss, dtype=dtype)
        values[f"step{k}/chosen_rewards"] = np.asarray(chosen)
        values[f"step{k}/rejected_rewards"] = np.asarray(rejected)
    for name, param in policy.named_parameters():
        values[f"step{len(batches)}/param.{name}"] = param.data.copy()
    return values


def train_torch(loss_fn: nn.Module, state: dict[str, np.ndarray], batches: list, options: dict,
                dtype: torch.dtype, device: str = "cpu") -> dict[str, np.ndarray]:
    policy, reference = (torch_twin.BigramPolicy(options["vocab_size"]).to(dtype)
                         for _ in range(2))
    for model in (policy, reference):
        model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
        model.to(device)
    opt = getattr(torch.optim, options["optimizer"])(policy.parameters(), **options["opt"])
    values = {}
    for k, batch in enumerate(batches, start=1):
        tokens, labels, mask = (torch.from_numpy(np.array(a)).to(device) for a in batch)
        loss, chosen, rejected = torch_twin.train_step(policy, reference, loss_fn, opt, tokens,
                                                       labels, mask)
        values[f"step{k}/loss"] = torch.tensor(loss, dtype=dtype).numpy()
        values[f"step{k}/chosen_rewards"] = chosen.cpu().numpy()
        values[f"step{k}/rejected_rewards"] = rejected.cpu().numpy()
    for name, param in policy.named_parameters():
        values[f"step{len(batches)}/param.{name}"] = param.detach().cpu().numpy().copy()
    return values


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Gradient cases: the module runner. Training cases: ``steps`` DPO steps of a bigram
    policy on batches drawn once, with ``numpy_cls`` / ``torch_cls`` as the loss."""
    if "steps" not in case.options:
        return run_module(case, trial, numpy_cls, torch_cls)
    state, batches = _policy_state(case, trial), _batches(case, trial)
    numpy_loss = (numpy_cls or case.numpy)(**case.init)
    numpy_loss.to(trial.np_dtype)
    outcome = Outcome(
        numpy=train_numpy(numpy_loss, state, batches, case.options, trial.np_dtype),
        torch=train_torch(torch_module(torch_cls or case.torch, case, {}, trial), state,
                          batches, case.options, trial.torch_dtype, trial.device))
    if trial.builtin and case.builtin is not None:
        outcome.builtin = train_torch(torch_module(case.builtin, case, {}, trial), state,
                                      batches, case.options, trial.torch_dtype, trial.device)
    return outcome


# --- cases ---------------------------------------------------------------------------------------
def _case(name: str, pairs: int = 3, steps: int = 5, vocab: int = 6, scale: float = 1.0,
          tolerance: dict[str, Tolerance] | None = None, **init: Any) -> Case:
    rows = 2 * pairs
    return Case(name, numpy=numpy_twin.DPOLoss, torch=torch_twin.DPOLoss, builtin=BuiltinDPOLoss,
                init=init, prepare=None, tolerance=tolerance or {},
                inputs=dict(policy_logits=randn(rows, steps, vocab, scale=scale),
                            reference_logits=randn(rows, steps, vocab, scale=scale),
                            labels=randint(vocab, rows, steps),
                            loss_mask=response_mask(rows, steps)))


def _training(name: str, optimizer: str, steps: int = 20, lr: float | None = None,
              **init: Any) -> Case:
    # fd=False: a training run has no single backward to difference (the gradient cases check
    # the backward against finite differences).
    opt = dict(lr=lr or {"Adam": 0.05, "SGD": 1.0}[optimizer])
    if optimizer == "Adam":
        # eps=1e-3 (Adam's default 1e-8): an entry whose gradient is near 0 steps by
        # m / (sqrt(v) + eps) ~ +-1 whichever way rounding tips it, lr = 0.05 a step; at seed
        # 255 the float32 twins' tables parted by 3.1e-3 that way. lr / eps bounds that
        # sensitivity; the gradients that matter (~1e-2 and up) are still normalized. Over
        # seeds 240-279 the worst is then 1.7e-5 (train-adam) and 1.9e-5 (train-ipo).
        opt["eps"] = 1e-3
    return Case(name, numpy=numpy_twin.DPOLoss, torch=torch_twin.DPOLoss, builtin=BuiltinDPOLoss,
                init=init, prepare=None, fd=False,
                options=dict(steps=steps, batch=8, n_pairs=64, vocab_size=8, prompt_len=2,
                             max_response=5, optimizer=optimizer, opt=opt))


def _bench_work(trial: Trial) -> dict[str, Any]:
    """One DPO update step (policy and frozen reference forward, the loss, backward, Adam) of
    a bigram policy over a vocabulary of 512, on 16 pairs of 64 tokens: (32, 64, 512) logits;
    the policies train on from the same weights, on the same batch."""
    vocab, rows, steps = 512, 32, 64
    rng = trial.rng()
    sequences = rng.integers(1, vocab, size=(rows, steps + 1))
    tokens, labels = sequences[:, :-1], sequences[:, 1:]              # (2B, T)
    mask = response_mask(rows, steps)(rng)                            # (2B, T)
    torch.manual_seed(trial.seed)
    state = {k: trial.cast(v.numpy().copy())
             for k, v in torch_twin.BigramPolicy(vocab).double().state_dict().items()}
    policy, reference = (numpy_twin.BigramPolicy(vocab).to(trial.np_dtype) for _ in range(2))
    for model in (policy, reference):
        model.load_state_dict(state)
    numpy_loss = numpy_twin.DPOLoss(beta=0.1).to(trial.np_dtype)
    numpy_opt = numpy_optim.Adam(policy.parameters(), lr=0.05)

    def numpy_step() -> Any:
        return numpy_twin.train_step(policy, reference, numpy_loss, numpy_opt, tokens, labels,
                                     mask)

    def torch_step(loss_cls: Any) -> Any:
        nets = [torch_twin.BigramPolicy(vocab).to(trial.torch_dtype) for _ in range(2)]
        for model in nets:
            model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
        opt = torch.optim.Adam(nets[0].parameters(), lr=0.05)
        loss_fn = loss_cls(beta=0.1)
        batch = [torch.from_numpy(np.array(a)) for a in (tokens, labels, mask)]
        return lambda: torch_twin.train_step(nets[0], nets[1], loss_fn, opt, *batch)
    return {"numpy": numpy_step, "torch": torch_step(torch_twin.DPOLoss),
            "builtin": torch_step(BuiltinDPOLoss)}


CONCEPT = Concept(
    name="dpo",
    family="alignment",
    summary="direct preference optimization: -log σ(β((π_c - π_r) - (ρ_c - ρ_r))) from "
            "masked per-token log-softmax; label smoothing, IPO; implicit rewards",
    compares="loss and implicit rewards; grads of the policy (and reference) logits through "
             "log-softmax, gather and the response mask (β, label smoothing, IPO, a pair of "
             "one, large logits); 20 training steps of a bigram policy (Adam, SGD): loss and "
             "rewards per step, the table at the end; the margin grows",
    witness="none in torch; F.log_softmax, gather, F.logsigmoid; torch.optim",
    run=run,
    bench=Bench("one DPO update step (Adam) of a bigram policy, vocabulary 512, on 16 pairs of "
                "64 tokens: (32, 64, 512) logits", work=_bench_work),
    cases=[
        _case("sigmoid"),
        _case("beta-1", beta=1.0),
        _case("label-smoothing", beta=0.5, label_smoothing=0.2),
        _case("ipo", beta=0.5, loss_type="ipo"),
        # One pair: each implicit reward is one number, beta times a difference of two sums of
        # log-probabilities that cancel (2.6e-4 at seed 375, where the built-in's float32
        # rounding, 4.8e-8, was 1.8e-4 of it); at most 4.8e-8 over seeds 0-399 in either check.
        _case("pair-of-one", pairs=1, steps=4,
              tolerance={f"float32:out.{k}": Tolerance(rtol=1e-4, atol=2.5e-7) for k in (1, 2)}),
        # Logits of scale 30 make most gradients tiny (2e-5 at seed 785), while central
        # differences carry their own rounding, eps |L| / h whatever the gradient's size: at
        # most 2.0e-9 over seeds 0-999 on either logits, which reached 1e-6 of those gradients
        # at seed 785. An fd floor 5x that; a wrong backward is off by the gradient's own size.
        _case("large-logits", scale=30.0, beta=0.05,
              tolerance={"fd": Tolerance(rtol=1e-6, atol=1e-8)}),
        _training("train-adam", "Adam", beta=0.5),
        _training("train-sgd", "SGD", beta=0.5),
        _training("train-ipo", "Adam", beta=0.5, loss_type="ipo"),
    ],
)


# --- the demo ------------------------------------------------------------------------------------
def train_side_by_side(steps: int = 200, beta: float = 0.5, lr: float = 0.05, seed: int = 0,
                       every: int = 20, out: TextIO | None = sys.stdout) -> dict[str, np.ndarray]:
    """Both twins in float32, Adam, batches of 8 pairs; per step the loss, the margin (mean
    chosen minus rejected reward) and the mean rewards, printed side by side."""
    case = _training("demo", "Adam", steps=steps, lr=lr, beta=beta)
    trial = Trial("float32", seed=seed)
    state, batches = _policy_state(case, trial), _batches(case, trial)
    by_numpy = train_numpy(numpy_twin.DPOLoss(beta=beta), state, batches, case.options,
                           np.dtype(np.float32))
    by_torch = train_torch(torch_twin.DPOLoss(beta=beta), state, batches, case.options,
                           torch.float32)
    curves: dict[str, Any] = {"step": np.arange(1, steps + 1)}
    for twin, values in (("numpy", by_numpy), ("torch", by_torch)):
        for key in ("loss", "chosen_rewards", "rejected_rewards"):
            curves[f"{key}_{twin}"] = np.array([np.mean(values[f"step{k}/{key}"])
                                                for k in range(1, steps + 1)])
        curves[f"margin_{twin}"] = curves[f"chosen_rewards_{twin}"] \
            - curves[f"rejected_rewards_{twin}"]
    if out is not None:
        print(f"training both twins (float32, DPO beta={beta:g}, Adam lr={lr:g}, batches of 8 "
              f"pairs, bigram policy over {case.options['vocab_size']} tokens)", file=out)
        print(f"{'step':>5}  {'loss numpy':>10}  {'loss torch':>10}  {'margin numpy':>12}  "
              f"{'margin torch':>12}  {'chosen numpy':>12}  {'rejected numpy':>14}", file=out)
        for k in range(steps):
            if (k + 1) % every == 0 or k == 0:
                print(f"{k + 1:>5}  {curves['loss_numpy'][k]:10.6f}"
                      f"  {curves['loss_torch'][k]:10.6f}"
                      f"  {curves['margin_numpy'][k]:12.6f}  {curves['margin_torch'][k]:12.6f}"
                      f"  {curves['chosen_rewards_numpy'][k]:12.6f}"
                      f"  {curves['rejected_rewards_numpy'][k]:14.6f}", file=out)
    return curves


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """dpo_margin.png, dpo_chosen_rewards.png, dpo_rejected_rewards.png: both twins' curves
    over 150 steps, and their difference."""
    from compare.plots import plot_curves
    curves = train_side_by_side(steps=150, seed=seed, out=None)
    paths = []
    for key, what in (("margin", "margin: mean chosen minus rejected implicit reward"),
                      ("chosen_rewards", "implicit reward of the chosen responses (mean)"),
                      ("rejected_rewards", "implicit reward of the rejected responses (mean)")):
        paths.append(plot_curves(Path(directory) / f"dpo_{key}.png",
                                 f"DPO, bigram policy: {what}", curves["step"],
                                 curves[f"{key}_numpy"], curves[f"{key}_torch"],
                                 xlabel="Adam step (8 pairs)", ylabel=key.replace("_", " "),
                                 dtype="float32"))
    return paths


CONCEPT.extra_plots = extra_plots


def script(argv: Sequence[str] | None = None) -> int:
    """``python -m compare.alignment.dpo [--steps N] [run options]``: the comparison, then
    the training demo (200 steps by default). Returns the comparison's exit code."""
    return comparison_then_demo(CONCEPT.name, train_side_by_side, "steps", 200, argv)


if __name__ == "__main__":
    raise SystemExit(script())
