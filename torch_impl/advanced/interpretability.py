r"""Mechanistic interpretability on the library's GPT in PyTorch: forward hooks, the logit
lens, activation patching, direct logit attribution, attribution patching (autograd).

The same analyses as the NumPy twin (see its docstring for the math), on the torch GPT
(``torch_impl.transformer.gpt.GPT``) run unchanged: every site is read -- and replaced, when
patching -- by a forward hook on a module of nanoGPT's tree, so nothing inside the model is
rewritten:

    "resid.l"     the input of block l          forward pre-hook on transformer.h.<l>
    "resid.L"     the stream entering ln_f      forward pre-hook on transformer.ln_f
    "pattern.l"   P_l, softmax(q k^T / sqrt D)  forward hook on h.<l>.attn.attn_dropout (its input)
    "z.l"         the merged heads y_l          forward pre-hook on h.<l>.attn.c_proj (its input)
    "attn_out.l"  the attention branch          forward hook on h.<l>.attn.c_proj (its output)
    "mlp_out.l"   the MLP branch                forward hook on h.<l>.mlp.c_proj (its output)

(in eval mode the dropouts after the two ``c_proj`` are the identity). A model without
``attn_dropout`` (one that calls a fused attention kernel) gives no patterns; the rest holds
for any module with nanoGPT's tree. The attribution-patching gradient dLD/dx_l is autograd's
(``torch.autograd.grad`` of LD with respect to the hooked block inputs).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from torch_impl.transformer.gpt import GPT, GPTConfig

Cache = dict[str, torch.Tensor]

__all__ = ["GPTConfig", "InterpretableGPT", "normalized_effect"]


class InterpretableGPT(GPT):
    """The torch GPT with hooks at every site, the logit lens, activation patching, direct
    logit attribution and attribution patching."""

    # --- the forward with a cache: hooks read every site and replace patched ones ------------
    def run_with_cache(self, idx: torch.Tensor,
                       patch: Mapping[str, torch.Tensor] | None = None,
                       ) -> tuple[torch.Tensor, Cache]:
        """Last-position logits (B, 1, V) and the cache; ``patch`` maps a site name to the
        whole activation (same shape) that replaces it in this run."""
        patch = patch or {}
        cache: Cache = {}

        def site(name: str, value: torch.Tensor) -> torch.Tensor:
            value = patch.get(name, value)
            cache[name] = value
            return value

        def before(name: str) -> Callable:                      # pre-hook: the module's input
            def hook(module: Any, args: tuple) -> tuple:
                return (site(name, args[0]),) + tuple(args[1:])
            return hook

        def after(name: str) -> Callable:                       # hook: the module's output
            return lambda module, args, output: site(name, output)

        def read_input(name: str) -> Callable:
            def hook(module: Any, args: tuple, *rest: Any) -> None:
                cache[name] = args[0]
            return hook

        handles = []
        blocks = list(self.transformer.h)
        for layer, block in enumerate(blocks):
            handles.append(block.register_forward_pre_hook(before(f"resid.{layer}")))
            if hasattr(block.attn, "attn_dropout"):
                handles.append(block.attn.attn_dropout.register_forward_hook(
                    read_input(f"pattern.{layer}")))                              # (B, H, T, T)
            handles.append(block.attn.c_proj.register_forward_pre_hook(read_input(f"z.{layer}")))
            handles.append(block.attn.c_proj.register_forward_hook(after(f"attn_out.{layer}")))
            handles.append(block.mlp.c_proj.register_forward_hook(after(f"mlp_out.{layer}")))
        handles.append(self.transformer.ln_f.register_forward_pre_hook(
            before(f"resid.{len(blocks)}")))
        try:
            logits, _ = self(idx)                                                 # (B, 1, V)
        finally:
            for handle in handles:
                handle.remove()
        return logits, cache

    # --- the logit lens -----------------------------------------------------------------------
    def logit_lens(self, cache: Cache) -> torch.Tensor:
        """lens_l = ln_f(x_l) W_U^T for every layer l = 0..L: (L+1, B, T, V)."""
        L = len(self.transformer.h)
        stream = torch.stack([cache[f"resid.{layer}"] for layer in range(L + 1)])  # (L+1, B, T, C)
        return self.lm_head(self.transformer.ln_f(stream))                        # (L+1, B, T, V)

    @staticmethod
    def logit_difference(logits: torch.Tensor, answer: torch.Tensor,
                         wrong: torch.Tensor) -> torch.Tensor:
        """LD = logits[b, -1, answer_b] - logits[b, -1, wrong_b]: (B,)."""
        last = logits[:, -1]                                                      # (B, V)
        return (last.gather(-1, answer[:, None]) - last.gather(-1, wrong[:, None])).squeeze(-1)

    # --- activation patching --------------------------------------------------------------------
    @torch.no_grad()
    def activation_patching(self, clean: torch.Tensor, corrupted: torch.Tensor,
                            answer: torch.Tensor, wrong: torch.Tensor) -> dict[str, torch.Tensor]:
        """Patched LD for every (layer, position) at the residual stream (B, L+1, T), the
        attention outputs and the MLP outputs (B, L, T), and the clean and corrupted LDs (B,);
        the T positions ride in the batch (copy t gets the clean activation at position t)."""
        B, T = clean.shape
        L = len(self.transformer.h)
        clean_logits, clean_cache = self.run_with_cache(clean)
        corrupt_logits, corrupt_cache = self.run_with_cache(corrupted)
        repeated = corrupted.repeat(T, 1)                                         # (T*B, T)
        positions = torch.arange(T)
        result = {"ld.clean": self.logit_difference(clean_logits, answer, wrong),
                  "ld.corrupted": self.logit_difference(corrupt_logits, answer, wrong)}
        for kind, layers in (("resid", L + 1), ("attn_out", L), ("mlp_out", L)):
            effects = []
            for layer in range(layers):
                name = f"{kind}.{layer}"
                patched = corrupt_cache[name].unsqueeze(0).repeat(T, 1, 1, 1)     # (T, B, T, C)
                patched[positions, :, positions] = clean_cache[name].transpose(0, 1)
                logits, _ = self.run_with_cache(repeated, {name: patched.flatten(0, 1)})
                ld = self.logit_difference(logits, answer.repeat(T), wrong.repeat(T))  # (T*B,)
                effects.append(ld.view(T, B).T)                                   # (B, T)
            result[f"patch.{kind}"] = torch.stack(effects, dim=1)                 # (B, layers, T)
        return result

    # --- direct logit attribution ---------------------------------------------------------------
    def direct_logit_attribution(self, cache: Cache, answer: torch.Tensor,
                                 wrong: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each component's write into the last position, read through ln_f with its scale
        frozen, along d = W_U[answer] - W_U[wrong]: the parts sum to LD exactly."""
        blocks = list(self.transformer.h)
        L, H = len(blocks), self.config.n_head
        ln_f = self.transformer.ln_f
        W_U = self.lm_head.weight                                                 # (V, C)
        d = W_U[answer] - W_U[wrong]                                              # (B, C)
        final = cache[f"resid.{L}"][:, -1]                                        # (B, C)
        sigma = torch.sqrt(final.var(dim=-1, unbiased=False, keepdim=True) + ln_f.eps)  # (B, 1)

        def read(c: torch.Tensor) -> torch.Tensor:
            return ((c - c.mean(dim=-1, keepdim=True)) / sigma * ln_f.weight * d).sum(dim=-1)
        emb = cache["resid.0"][:, -1]                                             # (B, C)
        heads, biases, mlps = [], [], []
        for layer, block in enumerate(blocks):
            W_O = block.attn.c_proj.weight                                        # (C, C)
            C = W_O.shape[0]
            z = cache[f"z.{layer}"][:, -1].view(-1, H, C // H)                    # (B, H, D)
            heads.append(read(torch.einsum("bhd,chd->hbc", z, W_O.view(C, H, C // H))))  # (H, B)
            b_O = block.attn.c_proj.bias
            biases.append(read(b_O.expand_as(emb)) if b_O is not None
                          else torch.zeros(emb.shape[0], dtype=emb.dtype))
            mlps.append(read(cache[f"mlp_out.{layer}"][:, -1]))
        beta = ln_f.bias if ln_f.bias is not None else torch.zeros_like(ln_f.weight)
        return {"dla.embed": read(emb),
                "dla.heads": torch.stack(heads).permute(2, 0, 1),                 # (B, L, H)
                "dla.attn_bias": torch.stack(biases, dim=1),                      # (B, L)
                "dla.mlp": torch.stack(mlps, dim=1),                              # (B, L)
                "dla.ln_bias": d @ beta}                                          # (B,)

    # --- attribution patching: autograd's gradient of LD ------------------------------------------
    def attribution_patching(self, clean: torch.Tensor, corrupted: torch.Tensor,
                             answer: torch.Tensor, wrong: torch.Tensor) -> dict[str, torch.Tensor]:
        """dLD/dx_l on the corrupted prompt at every block input (B, L, T, C), by autograd, and
        AP = (x_l^clean - x_l^corrupt) . dLD/dx_l (B, L, T)."""
        L = len(self.transformer.h)
        with torch.no_grad():
            _, clean_cache = self.run_with_cache(clean)
        logits, cache = self.run_with_cache(corrupted)
        stream = [cache[f"resid.{layer}"] for layer in range(L)]
        grads = torch.autograd.grad(self.logit_difference(logits, answer, wrong).sum(), stream)
        grads = torch.stack(grads, dim=1)                                         # (B, L, T, C)
        delta = torch.stack([clean_cache[f"resid.{layer}"] - stream[layer].detach()
                             for layer in range(L)],
                            dim=1)                                                # (B, L, T, C)
        return {"grad.resid": grads, "attribution.resid": (delta * grads).sum(dim=-1)}


def normalized_effect(patched: torch.Tensor, ld_clean: torch.Tensor,
                      ld_corrupted: torch.Tensor) -> torch.Tensor:
    """(LD_patched - LD_corrupt) / (LD_clean - LD_corrupt) per prompt: patched (B, ...)."""
    shape = (-1,) + (1,) * (patched.dim() - 1)
    return (patched - ld_corrupted.view(shape)) / (ld_clean - ld_corrupted).view(shape)
