"""Compare the transformer block, pre-LN and post-LN, against ``nn.TransformerEncoderLayer``.

Cases: pre-LN (``norm_first=True``) and post-LN, causal (the default) and bidirectional, with
and without bias, a key padding mask, dropout in every place torch puts it (attention
weights, MLP hidden, both branch outputs: four keep-masks drawn once per trial and given to
both twins), dropout in eval mode, one position, a batch of one. Compared: the output, the
gradient of the input and of every parameter, and the intermediates ``attn`` (attention
branch), ``mid`` (residual stream between the sub-layers), ``ffn`` (MLP branch) with their
gradients.

The runner is this concept's own: ``forward`` takes the padding mask and the dropout masks
as keywords. ``numpy_cls`` / ``torch_cls`` replace the twins (a user's class gets
``dropout_masks=`` only in the dropout cases).

Witness: ``nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout,
activation="gelu", batch_first=True, norm_first=...)`` called with the causal mask
``nn.Transformer.generate_square_subsequent_mask(T)`` and ``is_causal=True``. Its state dict
keys are the twins' own (``self_attn.in_proj_weight``, ``self_attn.in_proj_bias``,
``self_attn.out_proj.*``, ``linear1.*``, ``linear2.*``, ``norm1.*``, ``norm2.*``): no mapping.
It cannot replay dropout masks, so the training-mode dropout cases have no built-in row.
Run: ``python -m compare.transformer.transformer_block``.

Benchmark size: (N, T, C) = (16, 64, 128), 4 heads, dim_feedforward 512 (one block of a
small GPT).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from compare.concept import Bench, Case, Concept, Draw, Outcome, Trial, randn
from compare.finite_diff import numerical_gradient
from compare.runner import initial_state, numpy_twin, torch_module
from numpy_impl.transformer import transformer_block as numpy_block
from torch_impl.transformer import transformer_block as torch_block

N, T, C, HEADS, HIDDEN = 2, 4, 8, 2, 16
# Finite differences sample this many elements per tensor (the engine's default is 96): a
# block has 16 tensors, each element costs two forwards, and a wrong backward is wrong in
# most elements, so 32 keep the case well under a second and still catch it.
FD_SAMPLE = 32


class BuiltinBlock(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` behind the twins' constructor; the causal mask supplied."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int | None = None,
                 dropout: float = 0.0, activation: str = "gelu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = True, norm_first: bool = True, bias: bool = True,
                 causal: bool = True) -> None:
        super().__init__(d_model, nhead, dim_feedforward or 4 * d_model, dropout,
                         activation=activation, layer_norm_eps=layer_norm_eps,
                         batch_first=batch_first, norm_first=norm_first, bias=bias)
        self.causal = causal

    def forward(self, src, src_key_padding_mask=None):
        mask = nn.Transformer.generate_square_subsequent_mask(
            src.shape[1], dtype=src.dtype) if self.causal else None
        return super().forward(src, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                               is_causal=self.causal)


# --- the runner ----------------------------------------------------------------------------------
def _torch_values(module: nn.Module, src: np.ndarray, masks: dict[str, np.ndarray],
                  kwargs: dict[str, Any], upstream: Any, device: str):
    x = torch.from_numpy(src.copy()).to(device).requires_grad_()
    mask_tensors = {k: torch.from_numpy(v.copy()).to(device) for k, v in masks.items()}
    extra = {k: {n: torch.from_numpy(m).to(device) for n, m in v.items()}
             for k, v in kwargs.items()}
    with warnings.catch_warnings():  # a float causal mask next to a bool padding mask
        warnings.simplefilter("ignore")
        out = module(x, **mask_tensors, **extra)
    grad_out = upstream(tuple(out.shape))
    out.backward(torch.from_numpy(grad_out).to(device))
    values = {"out": out.detach().cpu().numpy(), "grad.input.src": x.grad.cpu().numpy()}
    for name, param in module.named_parameters():
        values[f"grad.param.{name}"] = param.grad.cpu().numpy()
    for name, tensor in (getattr(module, "intermediates", None) or {}).items():
        values[f"inter.{name}"] = tensor.detach().cpu().numpy()
        values[f"grad.inter.{name}"] = tensor.grad.cpu().numpy()
    return values, grad_out


def _numpy_values(module: Any, src: np.ndarray, masks: dict[str, np.ndarray],
                  kwargs: dict[str, Any], grad_out: np.ndarray) -> dict[str, np.ndarray]:
    values = {"out": np.asarray(module(src, **masks, **kwargs))}
    values["grad.input.src"] = np.asarray(module.backward(grad_out))
    for name, param in module.named_parameters():
        values[f"grad.param.{name}"] = param.grad
    grads = getattr(module, "intermediate_grads", None) or {}
    for name, value in (getattr(module, "intermediates", None) or {}).items():
        values[f"inter.{name}"] = np.asarray(value)
        if name in grads:
            values[f"grad.inter.{name}"] = np.asarray(grads[name])
    return values


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """One forward and backward of each twin, the witness and finite differences."""
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    src = trial.cast(case.inputs["src"](rng))
    masks = {k: trial.cast(d(rng)) for k, d in case.options.get("masks", {}).items()}
    kwargs: dict[str, Any] = {}
    p = case.init.get("dropout", 0.0)
    if p > 0.0 and case.train:  # four keep-masks, drawn once, shared by both twins
        shapes = numpy_block.TransformerBlock(**case.init).dropout_mask_shapes(*src.shape[:2])
        kwargs["dropout_masks"] = {name: rng.random(shape) >= p
                                   for name, shape in shapes.items()}
    twin = torch_module(torch_cls or case.torch, case, state, trial)
    torch_values, grad_out = _torch_values(
        twin, src, masks, kwargs, lambda shape: trial.cast(rng.standard_normal(shape)),
        trial.device)
    numpy_values = _numpy_values(numpy_twin(case, state, trial, numpy_cls), src.copy(), masks,
                                 kwargs, grad_out)
    outcome = Outcome(numpy=numpy_values, torch=torch_values, inputs={"src": src, **masks})
    if trial.builtin and case.builtin is not None:
        builtin = torch_module(case.builtin, case, state, trial)
        outcome.builtin, _ = _torch_values(builtin, src, masks, {}, lambda shape: grad_out,
                                           trial.device)
    if trial.fd and case.fd and trial.dtype == "float64":
        module = numpy_twin(case, state, trial, numpy_cls)
        x = src.copy()
        loss = lambda: float(np.sum(module(x, **masks, **kwargs) * grad_out))  # noqa: E731
        targets = {"grad.input.src": x}
        targets.update({f"grad.param.{k}": prm.data for k, prm in module.named_parameters()})
        pick = np.random.default_rng(trial.seed + 1)
        for name, array in targets.items():
            full = np.asarray(numpy_values[name])
            if array.size <= FD_SAMPLE:
                outcome.fd[name] = (full, numerical_gradient(loss, array))
            else:
                index = np.sort(pick.choice(array.size, FD_SAMPLE, replace=False))
                outcome.fd[name] = (full.reshape(-1)[index],
                                    numerical_gradient(loss, array, index))
    return outcome


# --- cases ---------------------------------------------------------------------------------------
def padding_mask(batch: int, length: int) -> Draw:
    """True = padded key; position 0 is never padded, so every query sees a key."""
    def draw(rng: np.random.Generator) -> np.ndarray:
        mask = rng.random((batch, length)) < 0.4
        mask[:, 0] = False
        return mask
    return draw


def _case(name: str, norm_first: bool, *, shape: tuple[int, int] = (N, T), train: bool = True,
          masks: dict[str, Draw] | None = None, **init: Any) -> Case:
    init = dict(d_model=C, nhead=HEADS, dim_feedforward=HIDDEN, norm_first=norm_first, **init)
    replayable = not (train and init.get("dropout", 0.0) > 0.0)  # the witness's own masks
    return Case(name, numpy=numpy_block.TransformerBlock, torch=torch_block.TransformerBlock,
                builtin=BuiltinBlock if replayable else None, init=init,
                inputs=dict(src=randn(*shape, C)), train=train, options=dict(masks=masks or {}))


CONCEPT = Concept(
    name="transformer_block",
    family="transformer",
    summary="pre-LN and post-LN transformer block: causal multi-head self-attention and a "
            "GELU MLP, each in a residual",
    compares="output; grads of the input and every parameter; the attention branch, the "
             "residual stream between the sub-layers and the MLP branch with their grads: "
             "pre-LN and post-LN, causal and bidirectional, no bias, key padding mask, "
             "dropout (four shared masks), eval, one position, batch of one",
    witness="nn.TransformerEncoderLayer",
    bench=Bench("pre-LN causal block, d_model 128, 4 heads, dim_feedforward 512, on src "
                "(N, T, C) = (16, 64, 128)",
                cases=(Case("bench", numpy=numpy_block.TransformerBlock,
                            torch=torch_block.TransformerBlock, builtin=BuiltinBlock,
                            init=dict(d_model=128, nhead=4, dim_feedforward=512, norm_first=True),
                            inputs=dict(src=randn(16, 64, 128))),)),
    run=run,
    cases=[
        _case("pre-ln", True),
        _case("post-ln", False),
        _case("pre-ln-no-bias", True, bias=False),
        _case("post-ln-no-bias", False, bias=False),
        _case("pre-ln-bidirectional", True, causal=False),
        _case("pre-ln-padding", True, masks=dict(src_key_padding_mask=padding_mask(N, T))),
        _case("post-ln-padding", False, masks=dict(src_key_padding_mask=padding_mask(N, T))),
        _case("pre-ln-dropout", True, dropout=0.2),
        _case("post-ln-dropout", False, dropout=0.2),
        _case("dropout-eval", True, dropout=0.2, train=False),
        _case("one-position", False, shape=(2, 1)),
        _case("batch-of-one", True, shape=(1, 5)),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
