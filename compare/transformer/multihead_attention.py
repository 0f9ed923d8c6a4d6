"""Compare ``MultiheadAttention`` against its torch twin and ``nn.MultiheadAttention`` itself.

Cases: self-attention (one tensor as query, key and value: its gradient is the sum of the
three) and cross-attention (L != S), both layouts (``batch_first``) and unbatched input, no
bias, one and four heads, ``key_padding_mask`` and ``attn_mask`` (bool and float, 2-D and
3-D, and both merged), ``need_weights`` with ``average_attn_weights`` True and False, the
``is_causal`` hint (with SDPA's own causal mask, and merged with a padding mask), a query
whose keys are all masked (``need_weights=False``: zeros, as torch), dropout on the weights
(one keep-mask, drawn once per trial, given to both twins), and dropout in eval mode.

The runner is this concept's own: ``forward`` takes keyword arguments (masks, need_weights,
average_attn_weights, is_causal) that the generic module runner cannot pass, and only the
attention output gets an upstream gradient (the weights are returned for inspection).
``numpy_cls`` / ``torch_cls`` replace the twins (``dualgrad verify multihead_attention
file.py:MyMHA``); a user's class gets ``dropout_mask=`` only in the dropout cases.

Witness: ``nn.MultiheadAttention`` with the same state dict (``in_proj_weight``,
``in_proj_bias``, ``out_proj.weight``, ``out_proj.bias``); it cannot replay a dropout mask,
so the training-mode dropout cases have no built-in row (tests/transformer/
test_multihead_attention.py replays nn.MultiheadAttention's own mask through both twins).
Run: ``python -m compare.transformer.multihead_attention``.

Benchmark size: (N, L, E, H) = (16, 64, 128, 4), self-attention, batch_first.
"""
from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from compare.concept import Bench, Case, Concept, Draw, Outcome, Trial, randn
from compare.finite_diff import numerical_gradient
from compare.runner import FD_MAX_ELEMENTS, initial_state, numpy_twin, torch_module
from numpy_impl.transformer import multihead_attention as numpy_mha
from torch_impl.transformer import multihead_attention as torch_mha

N, L, S, E = 2, 3, 5, 8  # batch, target length, source length, embed_dim of the cases


# --- the runner ----------------------------------------------------------------------------------
def call_inputs(arrays: Mapping[str, Any], self_attention: bool) -> tuple[Any, Any, Any]:
    """(query, key, value): one tensor three times for self-attention."""
    if self_attention:
        return arrays["x"], arrays["x"], arrays["x"]
    return arrays["query"], arrays["key"], arrays["value"]


def torch_side(module: nn.Module, arrays: Mapping[str, np.ndarray],
               masks: Mapping[str, np.ndarray], kwargs: Mapping[str, Any],
               upstream: Callable[[tuple[int, ...]], np.ndarray], self_attention: bool,
               device: str = "cpu"):
    """Forward and backward of a torch module, the upstream gradient drawn for out's shape;
    returns (named values, that gradient)."""
    leaves = {name: torch.from_numpy(a.copy()).to(device).requires_grad_()
              for name, a in arrays.items()}
    mask_tensors = {name: torch.from_numpy(m.copy()).to(device) for name, m in masks.items()}
    extra = {k: torch.from_numpy(np.asarray(v)).to(device) if isinstance(v, np.ndarray) else v
             for k, v in kwargs.items()}
    with warnings.catch_warnings():  # mixed bool/float masks: torch's deprecation warning
        warnings.simplefilter("ignore")
        out, weights = module(*call_inputs(leaves, self_attention), **mask_tensors, **extra)
    values = {"out": out.detach().cpu().numpy()}
    if weights is not None:
        values["weights"] = weights.detach().cpu().numpy()
    grad_out = upstream(tuple(out.shape))
    out.backward(torch.from_numpy(grad_out).to(device))
    for name, leaf in leaves.items():
        values[f"grad.input.{name}"] = leaf.grad.cpu().numpy()
    for name, param in module.named_parameters():
        values[f"grad.param.{name}"] = param.grad.cpu().numpy()
    return values, grad_out


def numpy_side(module: Any, arrays: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray],
               kwargs: Mapping[str, Any], grad_out: np.ndarray, self_attention: bool):
    out, weights = module(*call_inputs(arrays, self_attention), **masks, **kwargs)
    values = {"out": np.asarray(out)}
    if weights is not None:
        values["weights"] = np.asarray(weights)
    grads = module.backward(grad_out)
    if self_attention:  # x fed query, key and value: the three gradients add up
        values["grad.input.x"] = grads[0] + grads[1] + grads[2]
    else:
        for name, grad in zip(("query", "key", "value"), grads, strict=True):
            values[f"grad.input.{name}"] = np.asarray(grad)
    for name, param in module.named_parameters():
        values[f"grad.param.{name}"] = param.grad
    return values


def finite_differences(module: Any, arrays: dict[str, np.ndarray],
                       masks: Mapping[str, np.ndarray], kwargs: Mapping[str, Any],
                       grad_out: np.ndarray, self_attention: bool,
                       analytic: Mapping[str, np.ndarray], seed: int):
    """Central differences of sum(grad_out * out) w.r.t. every input and parameter (float64),
    on a seeded sample of FD_MAX_ELEMENTS elements for larger tensors."""
    def loss() -> float:
        out, _ = module(*call_inputs(arrays, self_attention), **masks, **kwargs)
        return float(np.sum(out * grad_out))
    targets = {f"grad.input.{k}": v for k, v in arrays.items()}
    targets.update({f"grad.param.{k}": p.data for k, p in module.named_parameters()})
    pick = np.random.default_rng(seed + 1)
    result = {}
    for name, array in targets.items():
        full = np.asarray(analytic[name])
        if array.size <= FD_MAX_ELEMENTS:
            result[name] = (full, numerical_gradient(loss, array))
        else:
            index = np.sort(pick.choice(array.size, FD_MAX_ELEMENTS, replace=False))
            result[name] = (full.reshape(-1)[index], numerical_gradient(loss, array, index))
    return result


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """One forward (with the case's keyword arguments) and backward of each twin."""
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    self_attention = "x" in case.inputs
    arrays = {name: trial.cast(draw(rng)) for name, draw in case.inputs.items()}
    masks = {name: trial.cast(draw(rng)) for name, draw in case.options.get("masks", {}).items()}
    kwargs = dict(case.options.get("forward", {}))
    twin_kwargs = dict(kwargs)
    p = case.init.get("dropout", 0.0)
    dropout_active = p > 0.0 and case.train
    if dropout_active:  # the keep-mask of every (batch, head, query, key), drawn once
        twin_kwargs["dropout_mask"] = rng.random(case.options["dropout_shape"]) >= p
    twin = torch_module(torch_cls or case.torch, case, state, trial)
    torch_values, grad_out = torch_side(
        twin, arrays, masks, twin_kwargs,
        lambda shape: trial.cast(rng.standard_normal(shape)), self_attention, trial.device)
    module = numpy_twin(case, state, trial, numpy_cls)
    numpy_values = numpy_side(module, {k: v.copy() for k, v in arrays.items()}, masks,
                              twin_kwargs, grad_out, self_attention)
    outcome = Outcome(numpy=numpy_values, torch=torch_values,
                      inputs={**arrays, **masks})
    if trial.builtin and case.builtin is not None:
        builtin = torch_module(case.builtin, case, state, trial)
        outcome.builtin, _ = torch_side(builtin, arrays, masks, kwargs, lambda shape: grad_out,
                                        self_attention, trial.device)
    if trial.fd and case.fd and trial.dtype == "float64":
        module = numpy_twin(case, state, trial, numpy_cls)
        outcome.fd = finite_differences(module, {k: v.copy() for k, v in arrays.items()},
                                        masks, twin_kwargs, grad_out, self_attention,
                                        numpy_values, trial.seed)
    return outcome


# --- inputs --------------------------------------------------------------------------------------
def bool_mask(*shape: int, masked: float = 0.3, dead_row: bool = False) -> Draw:
    """True = masked (torch's MultiheadAttention convention); key 0 always visible, except in
    row 1 of the first entry when ``dead_row``: a query whose keys are all masked."""
    def draw(rng: np.random.Generator) -> np.ndarray:
        mask = rng.random(shape) < masked
        mask[..., 0] = False
        if dead_row:
            mask[(0,) * (len(shape) - 2) + (1,)] = True
        return mask
    return draw


def float_mask(*shape: int) -> Draw:
    """N(0, 1) added to the scores, some -inf; key 0 always finite."""
    def draw(rng: np.random.Generator) -> np.ndarray:
        mask = rng.standard_normal(shape)
        mask[rng.random(shape) < 0.25] = -np.inf
        mask[..., 0] = 0.25
        return mask
    return draw


def causal_bool(length: int) -> Draw:
    """The causal attn_mask is_causal promises: True above the diagonal (masked)."""
    return lambda rng: np.triu(np.ones((length, length), dtype=bool), k=1)


def _case(name: str, *, cross: bool = False, batch_first: bool = False, unbatched: bool = False,
          masks: Mapping[str, Draw] | None = None, forward: Mapping[str, Any] | None = None,
          train: bool = True, length: int = L, **init: Any) -> Case:
    source = S if cross else length
    def shape(n: int) -> tuple[int, ...]:
        if unbatched:
            return (n, E)
        return (N, n, E) if batch_first else (n, N, E)
    inputs = dict(query=randn(*shape(length)), key=randn(*shape(source)),
                  value=randn(*shape(source))) if cross else dict(x=randn(*shape(length)))
    init = dict(embed_dim=E, num_heads=init.pop("num_heads", 2), batch_first=batch_first, **init)
    replayable = not (train and init.get("dropout", 0.0) > 0.0)  # its mask is its own
    return Case(name, numpy=numpy_mha.MultiheadAttention, torch=torch_mha.MultiheadAttention,
                builtin=nn.MultiheadAttention if replayable else None, init=init,
                inputs=inputs, train=train,
                options=dict(masks=masks or {}, forward=forward or {},
                             dropout_shape=(1 if unbatched else N, init["num_heads"], length,
                                            source)))


def _bench_work(trial: Trial) -> dict[str, Any]:
    """One forward + backward of each contender: batch-first self-attention, (N, L, E) =
    (16, 64, 128), 4 heads, averaged weights returned (the module's defaults)."""
    case = Case("bench", numpy=numpy_mha.MultiheadAttention, torch=torch_mha.MultiheadAttention,
                builtin=nn.MultiheadAttention, init=dict(embed_dim=128, num_heads=4,
                                                         batch_first=True), inputs={})
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    arrays = {"x": trial.cast(rng.standard_normal((16, 64, 128)))}
    grad_out = trial.cast(rng.standard_normal((16, 64, 128)))
    mine = numpy_twin(case, state, trial)

    def numpy_step() -> dict[str, np.ndarray]:
        mine.zero_grad()
        return numpy_side(mine, arrays, {}, {}, grad_out, True)

    def torch_step(module: nn.Module) -> Callable[[], dict[str, np.ndarray]]:
        def step() -> dict[str, np.ndarray]:
            module.zero_grad(set_to_none=True)
            return torch_side(module, arrays, {}, {}, lambda shape: grad_out, True)[0]
        return step
    return {"numpy": numpy_step,
            "torch": torch_step(torch_module(case.torch, case, state, trial)),
            "builtin": torch_step(torch_module(case.builtin, case, state, trial))}


CONCEPT = Concept(
    name="multihead_attention",
    family="transformer",
    summary="nn.MultiheadAttention by hand: packed in-projection, H heads of SDPA, out_proj",
    compares="attn_output and attn_weights; grads of query, key, value (self-attention: of "
             "the one input) and of in_proj_weight, in_proj_bias, out_proj: both layouts, "
             "unbatched, cross-attention, no bias, 1/2/4 heads, key_padding_mask and attn_mask "
             "(bool, float, 2-D, 3-D, merged), need_weights with average_attn_weights True and "
             "False, the is_causal hint, an all-masked query (zeros), dropout (shared mask), eval",
    witness="nn.MultiheadAttention",
    bench=Bench("batch-first self-attention, (N, L, E) = (16, 64, 128), 4 heads",
                work=_bench_work),
    run=run,
    cases=[
        _case("self-attention"),
        _case("self-attention-batch-first-no-weights", batch_first=True,
              forward=dict(need_weights=False)),
        _case("cross-attention", cross=True, batch_first=True,
              forward=dict(average_attn_weights=False)),
        _case("cross-attention-seq-first", cross=True),
        _case("unbatched", cross=True, unbatched=True,
              masks=dict(key_padding_mask=bool_mask(S)), forward=dict(average_attn_weights=False)),
        _case("no-bias", bias=False),
        _case("one-head", num_heads=1),
        _case("four-heads", num_heads=4, batch_first=True),
        _case("key-padding-bool", cross=True, batch_first=True,
              masks=dict(key_padding_mask=bool_mask(N, S))),
        _case("key-padding-float", cross=True, masks=dict(key_padding_mask=float_mask(N, S))),
        _case("attn-mask-bool-2d", cross=True, masks=dict(attn_mask=bool_mask(L, S))),
        _case("attn-mask-float-3d", cross=True, batch_first=True,
              masks=dict(attn_mask=float_mask(N * 2, L, S)),
              forward=dict(average_attn_weights=False)),
        _case("both-masks", cross=True, masks=dict(key_padding_mask=bool_mask(N, S),
                                                   attn_mask=bool_mask(N * 2, L, S))),
        _case("causal-hint", length=4, batch_first=True, masks=dict(attn_mask=causal_bool(4)),
              forward=dict(is_causal=True, need_weights=False)),
        _case("causal-hint-with-padding", length=4,
              masks=dict(attn_mask=causal_bool(4), key_padding_mask=bool_mask(N, 4)),
              forward=dict(is_causal=True)),
        _case("all-masked-query-no-weights", cross=True,
              masks=dict(attn_mask=bool_mask(L, S, dead_row=True)),
              forward=dict(need_weights=False)),
        _case("dropout-weights", cross=True, dropout=0.3,
              masks=dict(key_padding_mask=bool_mask(N, S)),
              forward=dict(average_attn_weights=False)),
        _case("dropout-no-weights", batch_first=True, dropout=0.3,
              forward=dict(need_weights=False)),
        _case("dropout-eval", dropout=0.3, train=False),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
