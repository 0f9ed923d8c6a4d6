r"""nanoGPT's GPT in idiomatic PyTorch; autograd does the backward.

The same model as the NumPy twin (see its docstring for the math), the same module tree and
parameter names, so one ``state_dict`` fits nanoGPT's model, this twin and the NumPy twin::

    x = drop(wte(idx) + wpe(pos))
    x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))          for each block
    logits = lm_head(ln_f(x))                              lm_head.weight is wte.weight
    loss = cross_entropy(logits, targets, ignore_index=-1)

The attention is nanoGPT's explicit path, written from the formula
(``softmax(q k^T / sqrt(D))`` with a causal ``masked_fill``); the layers are the library's
hand-written torch twins (``torch_impl.layers``: Linear, Embedding, LayerNorm, GELU, Dropout,
CrossEntropyLoss), so the built-in witness -- the same model from ``nn.Embedding``,
``nn.LayerNorm``, ``F.scaled_dot_product_attention(is_causal=True)``, ``nn.GELU`` and
``nn.Linear`` -- checks different code. ``forward(..., dropout_masks=...)`` replays given
keep-masks by Dropout module name; ``track_intermediates = True`` keeps the named
intermediates (``retain_grad``, for the comparison). ``generate(..., uniforms=...)`` samples
by inverse CDF from given uniforms, else with ``torch.multinomial`` as nanoGPT.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from torch_impl.layers.activations import GELU
from torch_impl.layers.dropout import Dropout
from torch_impl.layers.embedding import Embedding
from torch_impl.layers.layernorm import LayerNorm
from torch_impl.layers.linear import Linear
from torch_impl.layers.losses import CrossEntropyLoss

Masks = dict[str, torch.Tensor]
_CROSS_ENTROPY = CrossEntropyLoss(ignore_index=-1)  # stateless; nanoGPT's F.cross_entropy


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True


def dropout_mask_shapes(config: GPTConfig, batch: int, length: int) -> dict[str, tuple]:
    """The shape of every Dropout's keep-mask for a (batch, length) input, by module name."""
    B, T, C, H = batch, length, config.n_embd, config.n_head
    shapes = {"transformer.drop": (B, T, C)}
    for i in range(config.n_layer):
        shapes[f"transformer.h.{i}.attn.attn_dropout"] = (B, H, T, T)
        shapes[f"transformer.h.{i}.attn.resid_dropout"] = (B, T, C)
        shapes[f"transformer.h.{i}.mlp.dropout"] = (B, T, C)
    return shapes


def _keep(tensor: torch.Tensor, track: bool) -> torch.Tensor:
    if track and tensor.requires_grad:
        tensor.retain_grad()  # autograd's gradient of an intermediate, for the comparison
    return tensor


class CausalSelfAttention(nn.Module):

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
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                resid_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)             # (B, T, C) each
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, H, T, D)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, H, T, T)
        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril()
        att = att.masked_fill(~causal, float("-inf"))
        att = _keep(torch.softmax(att, dim=-1), self.track)             # (B, H, T, T)
        y = self.attn_dropout(att, attn_mask) @ v                       # (B, H, T, D)
        y = _keep(y.transpose(1, 2).contiguous().view(B, T, C), self.track)  # (B, T, C)
        out = _keep(self.resid_dropout(self.c_proj(y), resid_mask), self.track)
        if self.track:
            self.intermediates = {"att": att, "y": y, "out": out}
        return out


class MLP(nn.Module):

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.c_fc = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = GELU()
        self.c_proj = Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)
        self.track = False
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        fc = _keep(self.c_fc(x), self.track)                            # (B, T, 4C)
        h = _keep(self.gelu(fc), self.track)                            # (B, T, 4C)
        out = _keep(self.dropout(self.c_proj(h), mask), self.track)     # (B, T, C)
        if self.track:
            self.intermediates = {"fc": fc, "gelu": h, "out": out}
        return out


class Block(nn.Module):

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)
        self.track = False
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor, masks: Masks | None = None) -> torch.Tensor:
        masks = masks or {}
        x = _keep(x, self.track)
        a = _keep(self.ln_1(x), self.track)
        x1 = x + self.attn(a, masks.get("attn.attn_dropout"), masks.get("attn.resid_dropout"))
        m = _keep(self.ln_2(x1), self.track)
        x2 = x1 + self.mlp(m, masks.get("mlp.dropout"))
        if self.track:
            self.intermediates = {"x": x, "ln_1": a,
                                  **{f"attn.{k}": v for k, v in self.attn.intermediates.items()},
                                  "ln_2": m,
                                  **{f"mlp.{k}": v for k, v in self.mlp.intermediates.items()}}
        return x2


class GPT(nn.Module):

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        assert config.vocab_size is not None
        assert config.block_size is not None
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=Embedding(config.vocab_size, config.n_embd),
            wpe=Embedding(config.block_size, config.n_embd),
            drop=Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))
        self.track_intermediates = False
        self.intermediates: dict[str, torch.Tensor] = {}

    def get_num_params(self, non_embedding: bool = True) -> int:
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n_params -= self.transformer.wpe.weight.numel()
        return n_params

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None,
                dropout_masks: Masks | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        device = idx.device
        b, t = idx.size()
        assert t <= self.config.block_size, \
            f"Cannot forward sequence of length {t}, block size is only {self.config.block_size}"
        masks = dropout_masks or {}
        track = self.track_intermediates
        for block in self.transformer.h:
            block.track = block.attn.track = block.mlp.track = track
        pos = torch.arange(0, t, dtype=torch.long, device=device)      # (T,)
        tok_emb = self.transformer.wte(idx)                             # (B, T, C)
        pos_emb = self.transformer.wpe(pos)                             # (T, C)
        x = self.transformer.drop(tok_emb + pos_emb, masks.get("transformer.drop"))
        inter = {}
        for i, block in enumerate(self.transformer.h):
            prefix = f"transformer.h.{i}."
            x = block(x, {k[len(prefix):]: m for k, m in masks.items() if k.startswith(prefix)})
            if track:
                inter.update({f"h.{i}.{k}": v for k, v in block.intermediates.items()})
        x = _keep(self.transformer.ln_f(x), track)
        if track:
            inter["ln_f"] = x
        self.intermediates = inter
        if targets is not None:
            logits = self.lm_head(x)                                    # (B, T, V)
            loss = _CROSS_ENTROPY(logits.view(-1, logits.size(-1)), targets.view(-1))
        else:
            logits = self.lm_head(x[:, [-1], :])                        # (B, 1, V)
            loss = None
        return logits, loss

    def crop_block_size(self, block_size: int) -> None:
        assert block_size <= self.config.block_size
        self.config.block_size = block_size
        self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size])
        self.transformer.wpe.num_embeddings = block_size

    def configure_optimizers(self, weight_decay: float, learning_rate: float,
                             betas: tuple[float, float], device_type: str = "cpu"
                             ) -> torch.optim.AdamW:
        param_dict = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
        decay_params = [p for n, p in param_dict.items() if p.dim() >= 2]
        nodecay_params = [p for n, p in param_dict.items() if p.dim() < 2]
        optim_groups = [
            {"params": decay_params, "weight_decay": weight_decay},
            {"params": nodecay_params, "weight_decay": 0.0},
        ]
        extra_args = dict(fused=True) if device_type == "cuda" else dict()
        return torch.optim.AdamW(optim_groups, lr=learning_rate, betas=betas, **extra_args)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
                 top_k: int | None = None, uniforms: torch.Tensor | None = None
                 ) -> torch.Tensor:
        for step in range(max_new_tokens):
            block = self.config.block_size
            idx_cond = idx if idx.size(1) <= block else idx[:, -block:]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :] / temperature                     # (B, V)
            if top_k is not None:
                v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < v[:, [-1]]] = -float("Inf")
            probs = torch.softmax(logits, dim=-1)                       # (B, V)
            if uniforms is None:
                idx_next = torch.multinomial(probs, num_samples=1)
            else:
                idx_next = sample(probs, uniforms[:, step])             # (B, 1)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx


def sample(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF sampling: the first index whose cumulative probability exceeds u * total."""
    cdf = torch.cumsum(probs, dim=-1)                                   # (B, V)
    below = cdf < (u.to(cdf.dtype) * cdf[:, -1]).unsqueeze(-1)          # (B, V)
    return below.sum(dim=-1).clamp(max=probs.size(-1) - 1).unsqueeze(-1)  # (B, 1)
