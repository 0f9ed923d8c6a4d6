r"""A whole GPT by hand: nanoGPT's model, forward and backward written out in NumPy.

The model (nanoGPT's module tree, parameter names and initialization; B batch, T <= block_size
positions, C = n_embd, H = n_head heads of D = C / H, V = vocab_size)::

    x_0   = drop(wte[idx] + wpe[0..T-1])                           (B, T, C)
    for each block l = 1..n_layer (pre-LN, residual):
        a   = ln_1(x)                                              (B, T, C)
        q, k, v = split(a W_attn^T + b_attn)  into H heads         (B, H, T, D) each
        P   = softmax(q k^T / sqrt(D) + causal mask)               (B, H, T, T)
        y   = merge_heads(attn_drop(P) v)                          (B, T, C)
        x   = x + resid_drop(y W_proj^T + b_proj)
        m   = ln_2(x)
        h   = gelu(m W_fc^T + b_fc)                                (B, T, 4C)
        x   = x + drop(h W_mlp^T + b_mlp)
    z     = ln_f(x)                                                (B, T, C)
    logits = z wte^T          (lm_head shares wte's weight)        (B, T, V)
    loss  = mean over the non-ignored targets of -log softmax(logits)[target]

Backward, given dL/dloss (or dL/dlogits without targets), each step the chain rule through
the line above it, in reverse:

    dlogits = (softmax(logits) - onehot(target)) / N  * dL/dloss   (cross-entropy)
    dz      = dlogits wte;   dwte += dlogits^T z                   (lm_head: the tied weight)
    dx      = ln_f backward(dz)
    for each block, last to first:
        dx += ln_2 backward(MLP backward(dx))       the residual x + f(x): dL/dx = g + f'(x)^T g
        dx += ln_1 backward(attention backward(dx))
    dwte[idx] += dx_0 (scatter-add);  dwpe[t] += sum_b dx_0[b, t]  (drop's mask gates dx_0 first)

so the tied weight receives both its LM-head gradient and its embedding gradient. The
attention's own backward (``scaled_dot_product_attention_backward``) gives dq, dk, dv from
dy; the heads are merged back into one (B, T, 3C) gradient for ``c_attn``'s backward: one
big matmul per projection, no loop over heads.

Contract (nanoGPT's, so a nanoGPT ``state_dict`` loads unchanged and vice versa):

- ``GPTConfig`` fields and defaults; ``GPT(config)`` with ``transformer.wte``, ``transformer.wpe``,
  ``transformer.h.<i>.ln_1 / .attn.c_attn / .attn.c_proj / .ln_2 / .mlp.c_fc / .mlp.c_proj``,
  ``transformer.ln_f``, ``lm_head``; ``lm_head.weight`` IS ``transformer.wte.weight`` (one
  Parameter, listed once by ``named_parameters()`` under ``transformer.wte.weight``; both keys
  in ``state_dict()``);
- ``logits, loss = model(idx, targets)``: with targets, logits (B, T, V) and the mean
  cross-entropy (``ignore_index=-1``); without, logits of the last position only (B, 1, V)
  and ``loss = None``;
- ``model.backward(1.0)`` after a forward with targets, ``model.backward(grad_logits)`` after
  one without: every ``p.grad`` accumulates;
- ``configure_optimizers`` returns the library's ``AdamW`` with nanoGPT's two groups (weight
  decay for every parameter of dim >= 2, none for the rest);
- ``generate(idx, max_new_tokens, temperature, top_k, uniforms=None)``: nanoGPT's sampling
  loop; ``uniforms`` (B, max_new_tokens) in [0, 1) replace ``torch.multinomial``'s randomness
  (inverse-CDF sampling), so both twins draw identical tokens.

Dropout (skipped when ``dropout == 0``, where it is the identity and drawing an unused mask
would cost time): ``forward(..., dropout_masks=...)`` replays given keep-masks, named by the Dropout
modules' names (``dropout_mask_shapes`` lists them); without, each Dropout draws its own from
``numpy_impl.random``. With ``track_intermediates = True`` the model keeps every named
intermediate (``intermediates``) and its gradient (``intermediate_grads``): per block the
block input, ``ln_1``, the attention weights ``attn.att``, the merged heads ``attn.y``, the
attention branch ``attn.out``, ``ln_2``, ``mlp.fc`` (before GELU), ``mlp.gelu``,
``mlp.out``; then ``ln_f``.

nanoGPT's ``print`` calls (parameter counts, fused AdamW) are left out: a library call prints
nothing. ``estimate_mfu`` (GPU utilisation) and ``from_pretrained`` (a download) are out of
scope: a nanoGPT checkpoint's ``model`` state dict of the same config loads with
``load_state_dict`` (Hugging Face GPT-2 weights need the transposes nanoGPT's
``from_pretrained`` applies to their Conv1D layers first).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from numpy_impl import random
from numpy_impl.layers import activations
from numpy_impl.layers.activations import softmax
from numpy_impl.layers.dropout import Dropout
from numpy_impl.layers.embedding import Embedding
from numpy_impl.layers.layernorm import LayerNorm
from numpy_impl.layers.linear import Linear
from numpy_impl.layers.losses import CrossEntropyLoss
from numpy_impl.module import Module, ModuleList
from numpy_impl.training.optimizers import AdamW
from numpy_impl.transformer.attention import (
    scaled_dot_product_attention,
    scaled_dot_product_attention_backward,
)

Masks = dict[str, np.ndarray]


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64, as nanoGPT
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in the Linears and LayerNorms


def dropout_mask_shapes(config: GPTConfig, batch: int, length: int) -> dict[str, tuple]:
    """The shape of every Dropout's keep-mask for a (batch, length) input, by module name."""
    B, T, C, H = batch, length, config.n_embd, config.n_head
    shapes = {"transformer.drop": (B, T, C)}
    for i in range(config.n_layer):
        shapes[f"transformer.h.{i}.attn.attn_dropout"] = (B, H, T, T)
        shapes[f"transformer.h.{i}.attn.resid_dropout"] = (B, T, C)
        shapes[f"transformer.h.{i}.mlp.dropout"] = (B, T, C)
    return shapes


class CausalSelfAttention(Module):
    """Multi-head causal self-attention: one c_attn for q, k, v, heads as a batch dim."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = Dropout(config.dropout)
        self.resid_dropout = Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.track = False
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, attn_mask: np.ndarray | None = None,
                resid_mask: np.ndarray | None = None) -> np.ndarray:
        B, T, C = x.shape
        H, D = self.n_head, C // self.n_head
        qkv = self.c_attn(x).reshape(B, T, 3, H, D)                   # (B, T, 3, H, D)
        q, k, v = (qkv[:, :, i].transpose(0, 2, 1, 3) for i in range(3))  # (B, H, T, D) views
        p = self.dropout if self.training else 0.0
        out, self._cache = scaled_dot_product_attention(
            q, k, v, dropout_p=p, is_causal=True, dropout_mask=attn_mask)  # (B, H, T, D)
        y = out.transpose(0, 2, 1, 3).reshape(B, T, C)                # (B, T, C) heads merged
        proj = self.c_proj(y)                                         # (B, T, C)
        result = self.resid_dropout(proj, resid_mask) if self.dropout else proj  # (B, T, C)
        if self.track:
            self.intermediates = {"att": self._cache.weights, "y": y, "out": result}
        return result

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        B, T, C = grad_output.shape
        H, D = self.n_head, C // self.n_head
        dproj = self.resid_dropout.backward(grad_output) if self.dropout else grad_output
        dy = self.c_proj.backward(dproj)                              # (B, T, C) through c_proj
        dout = dy.reshape(B, T, H, D).transpose(0, 2, 1, 3)           # (B, H, T, D) split heads
        dq, dk, dv = scaled_dot_product_attention_backward(dout, self._cache)  # (B, H, T, D)
        dqkv = np.empty((B, T, 3, H, D), dtype=dq.dtype)              # merge q, k, v back
        for i, d in enumerate((dq, dk, dv)):                          # three, not per head
            dqkv[:, :, i] = d.transpose(0, 2, 1, 3)
        dx = self.c_attn.backward(dqkv.reshape(B, T, 3 * C))          # (B, T, C)
        if self.track:
            cache = self._cache  # dL/dP = (dout v^T) * dropout's gate: for the report only
            datt = dout @ np.swapaxes(cache.value, -1, -2)            # (B, H, T, T)
            if cache.keep is not None:
                datt = datt * cache.keep * cache.keep_scale
            self.intermediate_grads = {"att": datt, "y": dy, "out": grad_output}
        return dx


class MLP(Module):
    """Linear(C, 4C) -> GELU -> Linear(4C, C) -> dropout."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = activations.GELU()                                # exact, as nn.GELU()
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)
        self.track = False
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        fc = self.c_fc(x)                                             # (B, T, 4C)
        h = self.gelu(fc)                                             # (B, T, 4C)
        proj = self.c_proj(h)                                         # (B, T, C)
        out = self.dropout(proj, mask) if self.dropout.p else proj    # (B, T, C)
        if self.track:
            self.intermediates = {"fc": fc, "gelu": h, "out": out}
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        dproj = self.dropout.backward(grad_output) if self.dropout.p else grad_output
        dh = self.c_proj.backward(dproj)                              # (B, T, 4C)
        dfc = self.gelu.backward(dh)                                  # (B, T, 4C)
        dx = self.c_fc.backward(dfc)                                  # (B, T, C)
        if self.track:
            self.intermediate_grads = {"fc": dfc, "gelu": dh, "out": grad_output}
        return dx


class Block(Module):
    """Pre-LN transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
        self.track = False
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray, masks: Masks | None = None) -> np.ndarray:
        masks = masks or {}
        a = self.ln_1(x)                                              # (B, T, C)
        x1 = x + self.attn(a, masks.get("attn.attn_dropout"), masks.get("attn.resid_dropout"))
        m = self.ln_2(x1)                                             # (B, T, C)
        x2 = x1 + self.mlp(m, masks.get("mlp.dropout"))               # (B, T, C)
        if self.track:
            self.intermediates = {"x": x, "ln_1": a,
                                  **{f"attn.{k}": v for k, v in self.attn.intermediates.items()},
                                  "ln_2": m,
                                  **{f"mlp.{k}": v for k, v in self.mlp.intermediates.items()}}
        return x2

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        # x2 = x1 + mlp(ln_2(x1)): the skip passes g through, the branch adds its own part
        dm = self.mlp.backward(grad_output)                           # (B, T, C) dL/dm
        dx1 = grad_output + self.ln_2.backward(dm)                    # (B, T, C)
        # x1 = x + attn(ln_1(x)): the same rule once more
        da = self.attn.backward(dx1)                                  # (B, T, C) dL/da
        dx = dx1 + self.ln_1.backward(da)                             # (B, T, C)
        if self.track:
            self.intermediate_grads = {
                "x": dx, "ln_1": da,
                **{f"attn.{k}": v for k, v in self.attn.intermediate_grads.items()},
                "ln_2": dm, **{f"mlp.{k}": v for k, v in self.mlp.intermediate_grads.items()}}
        return dx


class Transformer(Module):
    """nanoGPT's ``transformer`` ModuleDict: wte, wpe, drop, h, ln_f (registered in that
    order, so state_dict keys come in torch's order)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.wte = Embedding(config.vocab_size, config.n_embd)
        self.wpe = Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.h = ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, bias=config.bias)


class GPT(Module):
    """nanoGPT's GPT language model, forward and backward by hand."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        assert config.vocab_size is not None
        assert config.block_size is not None
        self.config = config
        self.transformer = Transformer(config)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying: one Parameter, read by the embedding and by the LM head
        self.transformer.wte.weight = self.lm_head.weight
        self._init_weights()
        self.track_intermediates = False
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}
        # the loss is not a submodule of nanoGPT's tree: kept out of named_modules()
        object.__setattr__(self, "_loss_fn", CrossEntropyLoss(ignore_index=-1))

    def _init_weights(self) -> None:
        """nanoGPT's init: N(0, 0.02) for Linear and Embedding weights, zero biases, and the
        residual projections (``c_proj``) at 0.02 / sqrt(2 n_layer)."""
        rng, dtype = random.generator(), random.default_dtype()
        for _, module in self.named_modules():
            if isinstance(module, (Linear, Embedding)):
                module.weight.data = (0.02 * rng.standard_normal(module.weight.shape)).astype(dtype)
            if isinstance(module, Linear) and module.bias is not None:
                module.bias.data = np.zeros(module.bias.shape, dtype)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                std = 0.02 / math.sqrt(2 * self.config.n_layer)
                p.data = (std * rng.standard_normal(p.shape)).astype(dtype)

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameter count; the position embeddings are left out by default (as nanoGPT), the
        token embeddings are counted because the LM head uses them as its weight."""
        n_params = sum(p.data.size for p in self.parameters())
        if non_embedding:
            n_params -= self.transformer.wpe.weight.data.size
        return n_params

    def _set_tracking(self, on: bool) -> None:
        for block in self.transformer.h.children():
            block.track = block.attn.track = block.mlp.track = on

    def forward(self, idx: np.ndarray, targets: np.ndarray | None = None,
                dropout_masks: Masks | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        idx = np.asarray(idx)
        b, t = idx.shape
        assert t <= self.config.block_size, \
            f"Cannot forward sequence of length {t}, block size is only {self.config.block_size}"
        masks = dropout_masks or {}
        track = self.track_intermediates
        self._set_tracking(track)
        pos = np.arange(0, t, dtype=np.int64)                         # (T,)
        tok_emb = self.transformer.wte(idx)                           # (B, T, C)
        pos_emb = self.transformer.wpe(pos)                           # (T, C)
        x = tok_emb + pos_emb                                         # (B, T, C)
        if self.config.dropout:
            x = self.transformer.drop(x, masks.get("transformer.drop"))
        inter = {}
        for i, block in enumerate(self.transformer.h.children()):
            prefix = f"transformer.h.{i}."
            x = block(x, {k[len(prefix):]: m for k, m in masks.items() if k.startswith(prefix)})
            if track:
                inter.update({f"h.{i}.{k}": v for k, v in block.intermediates.items()})
        x = self.transformer.ln_f(x)                                  # (B, T, C)
        if track:
            inter["ln_f"] = x
        self._last_only = targets is None
        if targets is not None:
            logits = self.lm_head(x)                                  # (B, T, V)
            loss = self._loss_fn(logits.reshape(-1, logits.shape[-1]),
                                 np.asarray(targets).reshape(-1))     # ()
        else:
            # inference: only the last position's logits (a list index keeps the time dim)
            logits = self.lm_head(x[:, [-1], :])                      # (B, 1, V)
            loss = None
        self._shape = (b, t, x.shape[-1])
        self.intermediates = inter
        return logits, loss

    def backward(self, grad_output: Any = 1.0) -> None:
        """dL/dloss (after a forward with targets) or dL/dlogits (without); fills p.grad."""
        b, t, c = self._shape
        if self._last_only:
            dlogits = np.asarray(grad_output)                         # (B, 1, V)
        else:
            dloss = np.asarray(grad_output, dtype=self.lm_head.weight.data.dtype)
            dlogits = self._loss_fn.backward(dloss).reshape(b, t, -1)  # (B, T, V) cross-entropy
        dz = self.lm_head.backward(dlogits)                           # (B, T|1, C) lm_head
        if self._last_only:                                           # only x[:, -1] was read
            dz_full = np.zeros((b, t, c), dtype=dz.dtype)
            dz_full[:, -1:] = dz
            dz = dz_full
        grads = {"ln_f": dz} if self.track_intermediates else {}
        dx = self.transformer.ln_f.backward(dz)                       # (B, T, C) ln_f
        blocks = list(self.transformer.h.children())
        for i in reversed(range(len(blocks))):
            dx = blocks[i].backward(dx)                               # (B, T, C) block i
            if self.track_intermediates:
                grads.update({f"h.{i}.{k}": v for k, v in blocks[i].intermediate_grads.items()})
        demb = self.transformer.drop.backward(dx) if self.config.dropout else dx  # (B, T, C)
        self.transformer.wte.backward(demb)                           # scatter into wte rows
        self.transformer.wpe.backward(demb.sum(axis=0))               # (T, C) shared by batch
        self.intermediate_grads = grads
        return None                                                   # idx: integers

    def crop_block_size(self, block_size: int) -> None:
        """Shrink the context (e.g. a pretrained 1024 down to a smaller one)."""
        assert block_size <= self.config.block_size
        self.config.block_size = block_size
        wpe = self.transformer.wpe
        wpe.weight.data = wpe.weight.data[:block_size].copy()
        wpe.weight.grad = wpe.weight.grad[:block_size].copy()
        wpe.num_embeddings = block_size

    def configure_optimizers(self, weight_decay: float, learning_rate: float,
                             betas: tuple[float, float], device_type: str = "cpu") -> AdamW:
        """AdamW over two groups: decay every parameter of dim >= 2 (matmul weights,
        embeddings), none for the rest (biases, LayerNorm gains)."""
        param_dict = dict(self.named_parameters())
        decay_params = [p for _, p in param_dict.items() if p.data.ndim >= 2]
        nodecay_params = [p for _, p in param_dict.items() if p.data.ndim < 2]
        optim_groups = [
            {"params": decay_params, "weight_decay": weight_decay},
            {"params": nodecay_params, "weight_decay": 0.0},
        ]
        return AdamW(optim_groups, lr=learning_rate, betas=betas)

    def generate(self, idx: np.ndarray, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, uniforms: np.ndarray | None = None) -> np.ndarray:
        """Append ``max_new_tokens`` sampled tokens to idx (B, T): crop to block_size, last
        logits / temperature, keep the top_k, softmax, sample -- by inverse CDF from
        ``uniforms[:, step]`` (drawn here if not given)."""
        idx = np.asarray(idx)
        if uniforms is None:
            uniforms = random.generator().random((idx.shape[0], max_new_tokens))
        for step in range(max_new_tokens):
            block = self.config.block_size
            idx_cond = idx if idx.shape[1] <= block else idx[:, -block:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature                   # (B, V)
            if top_k is not None:
                kth = np.sort(logits, axis=-1)[:, -min(top_k, logits.shape[-1])]  # (B,)
                logits = np.where(logits < kth[:, None], -np.inf, logits)
            probs = softmax(logits, dim=-1)                           # (B, V)
            idx_next = sample(probs, uniforms[:, step])               # (B, 1)
            idx = np.concatenate((idx, idx_next), axis=1)             # (B, T + 1)
        return idx


def sample(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One token per row by inverse CDF: the first index whose cumulative probability exceeds
    u times the row total (a token of probability 0 is never chosen)."""
    cdf = np.cumsum(probs, axis=-1)                                   # (B, V)
    below = cdf < (np.asarray(u, cdf.dtype) * cdf[:, -1])[:, None]    # (B, V)
    idx = np.minimum(below.sum(axis=-1), probs.shape[-1] - 1)         # (B,)
    return idx[:, None].astype(np.int64)                              # (B, 1)
