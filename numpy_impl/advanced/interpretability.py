r"""Mechanistic interpretability on the library's GPT, by hand: caches, logit lens, activation
patching, direct logit attribution, attribution patching.

``InterpretableGPT`` is the NumPy GPT (``numpy_impl.transformer.gpt.GPT``: same constructor,
same state dict, so a nanoGPT checkpoint loads unchanged) with an explicit cache. Notation:
L layers, H heads of D = C / H, B prompts of T tokens, W_U = wte (the tied LM head), and the
residual stream written as the sum of what every component adds to it::

    x_0      = wte[idx] + wpe[0..T-1]                       "resid.0"        (B, T, C)
    x_{l+1}  = x_l + attn_l(ln_1(x_l)) + mlp_l(ln_2(.))     "attn_out.l", "mlp_out.l"
    attn_l   = sum_h  y_{l,h} W_O[:, h]^T  +  b_O           y_{l,h} = P_{l,h} v_{l,h}
    logits   = ln_f(x_L) W_U^T                              "resid.L" = x_L  (B, T, V)

Every site of the cache ("resid.l" for l = 0..L, "attn_out.l", "mlp_out.l", the attention
patterns "pattern.l" = P_l (B, H, T, T) and the merged heads "z.l" = y_l (B, T, C)) is an
explicit array from a forward written over the GPT's public modules (wte, wpe, each block's
ln_1, attn, ln_2, mlp; ln_f; lm_head) -- the same lines as ``Block.forward``, opened up so
that any site can be read or replaced.

The analyses, on a prompt whose next token should be ``answer`` rather than ``wrong``:

- logit difference  LD = logits[:, -1, answer] - logits[:, -1, wrong]             (B,)
- logit lens: read each layer's stream as if it were the last one,
  lens_l = ln_f(x_l) W_U^T                                                  (L+1, B, T, V)
- activation patching: run the corrupted prompt, but at one site and one position put the
  clean run's activation in its place; the patched LD per (site layer, position)
  (``resid`` L+1 layers, ``attn_out`` and ``mlp_out`` L layers)                (B, L(+1), T)
  and, normalized, (LD_patched - LD_corrupt) / (LD_clean - LD_corrupt): 1 = that activation
  alone restores the clean answer, 0 = it carries nothing the answer needs;
- direct logit attribution: ln_f with its scale frozen at the final stream's is linear, so
  LD splits exactly into what each component wrote into the stream at the last position::

      d     = W_U[answer] - W_U[wrong]                                         (B, C)
      DLA(c) = ((c - mean(c)) / sigma) * gamma . d      sigma = sqrt(var(x_L) + eps)
      LD    = sum over c in {embed, heads (l, h), b_O of each layer, mlp_l} DLA(c) + beta . d

- attribution patching (a gradient: the one backward of this concept): the first-order
  estimate of activation patching at the residual stream,
  AP[l, t] = (x_l^clean - x_l^corrupt)[t] . dLD/dx_l^corrupt[t]                (B, L, T),
  where dLD/dx_l comes from the GPT's own backward: ``backward`` with the upstream gradient
  dLD/dlogits = onehot(answer) - onehot(wrong) at the last position, read at each block input
  (``intermediate_grads["h.l.x"]``: the chain rule through the blocks above l).

The analyses run in eval mode (dropout off); the GPT's own ``forward`` and ``backward`` are
untouched.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from numpy_impl.transformer.gpt import GPT, GPTConfig

Cache = dict[str, np.ndarray]

__all__ = ["GPTConfig", "InterpretableGPT", "normalized_effect"]


class InterpretableGPT(GPT):
    """The NumPy GPT with a cache at every site, the logit lens, activation patching, direct
    logit attribution and attribution patching."""

    # --- the forward with a cache: every site readable and replaceable --------------------------
    def run_with_cache(self, idx: np.ndarray, patch: Mapping[str, np.ndarray] | None = None,
                       ) -> tuple[np.ndarray, Cache]:
        """Last-position logits (B, 1, V) and the cache; ``patch`` maps a site name to the
        whole activation (same shape) that replaces it in this run."""
        patch = patch or {}
        cache: Cache = {}

        def site(name: str, value: np.ndarray) -> np.ndarray:
            value = patch.get(name, value)
            cache[name] = value
            return value

        idx = np.asarray(idx)
        _, t = idx.shape
        pos = np.arange(t, dtype=np.int64)                                    # (T,)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)             # (B, T, C)
        blocks = list(self.transformer.h.children())
        for layer, block in enumerate(blocks):
            x = site(f"resid.{layer}", x)                                     # (B, T, C)
            block.attn.track = True  # keeps P and the merged heads y
            attn = block.attn(block.ln_1(x))                                  # (B, T, C)
            cache[f"pattern.{layer}"] = block.attn.intermediates["att"]       # (B, H, T, T)
            cache[f"z.{layer}"] = block.attn.intermediates["y"]               # (B, T, C)
            x = x + site(f"attn_out.{layer}", attn)                           # (B, T, C)
            x = x + site(f"mlp_out.{layer}", block.mlp(block.ln_2(x)))        # (B, T, C)
        x = site(f"resid.{len(blocks)}", x)                                   # (B, T, C)
        logits = self.lm_head(self.transformer.ln_f(x[:, [-1]]))              # (B, 1, V)
        return logits, cache

    # --- the logit lens -------------------------------------------------------------------------
    def logit_lens(self, cache: Cache) -> np.ndarray:
        """lens_l = ln_f(x_l) W_U^T for every layer l = 0..L: (L+1, B, T, V)."""
        L = self.config.n_layer
        stream = np.stack([cache[f"resid.{layer}"] for layer in range(L + 1)])  # (L+1, B, T, C)
        return self.lm_head(self.transformer.ln_f(stream))                    # (L+1, B, T, V)

    @staticmethod
    def logit_difference(logits: np.ndarray, answer: np.ndarray,
                         wrong: np.ndarray) -> np.ndarray:
        """LD = logits[b, -1, answer_b] - logits[b, -1, wrong_b]: (B,)."""
        rows = np.arange(logits.shape[0])
        last = logits[:, -1]                                                  # (B, V)
        return last[rows, answer] - last[rows, wrong]                         # (B,)

    # --- activation patching ----------------------------------------------------------------------
    def activation_patching(self, clean: np.ndarray, corrupted: np.ndarray,
                            answer: np.ndarray, wrong: np.ndarray) -> dict[str, np.ndarray]:
        """Patched LD for every (layer, position) at the residual stream (B, L+1, T), the
        attention outputs and the MLP outputs (B, L, T), and the clean and corrupted LDs (B,).

        One patched run per layer and site: the T positions ride in the batch (copy t of the
        corrupted prompt gets the clean activation at position t only)."""
        B, T = np.asarray(clean).shape
        L = self.config.n_layer
        clean_logits, clean_cache = self.run_with_cache(clean)
        corrupt_logits, corrupt_cache = self.run_with_cache(corrupted)
        repeated = np.tile(np.asarray(corrupted), (T, 1))                     # (T*B, T) copy-major
        positions = np.arange(T)
        result = {"ld.clean": self.logit_difference(clean_logits, answer, wrong),
                  "ld.corrupted": self.logit_difference(corrupt_logits, answer, wrong)}
        for kind, layers in (("resid", L + 1), ("attn_out", L), ("mlp_out", L)):
            effects = []
            for layer in range(layers):
                name = f"{kind}.{layer}"
                patched = np.repeat(corrupt_cache[name][None], T, axis=0)     # (T, B, T, C)
                # copy t takes the clean activation at position t: the diagonal (t, :, t)
                patched[positions, :, positions] = clean_cache[name].transpose(1, 0, 2)
                logits, _ = self.run_with_cache(
                    repeated, {name: patched.reshape(T * B, T, -1)})
                ld = self.logit_difference(logits, np.tile(answer, T), np.tile(wrong, T))
                effects.append(ld.reshape(T, B).T)                            # (B, T)
            result[f"patch.{kind}"] = np.stack(effects, axis=1)               # (B, layers, T)
        return result

    # --- direct logit attribution -----------------------------------------------------------------
    def direct_logit_attribution(self, cache: Cache, answer: np.ndarray,
                                 wrong: np.ndarray) -> dict[str, np.ndarray]:
        """What each component writes into the last position's stream, read through ln_f with
        its scale frozen, along d = W_U[answer] - W_U[wrong]. The parts sum to LD exactly."""
        L, H = self.config.n_layer, self.config.n_head
        ln_f = self.transformer.ln_f
        W_U = self.lm_head.weight.data                                        # (V, C)
        d = W_U[answer] - W_U[wrong]                                          # (B, C)
        final = cache[f"resid.{L}"][:, -1]                                    # (B, C)
        sigma = np.sqrt(final.var(axis=-1, keepdims=True) + ln_f.eps)         # (B, 1) frozen scale
        gamma = ln_f.weight.data                                              # (C,)

        def read(c: np.ndarray) -> np.ndarray:                            # (..., B, C) -> (..., B)
            centred = c - c.mean(axis=-1, keepdims=True)                  # ln_f's mean removal
            return np.sum(centred / sigma * gamma * d, axis=-1)
        emb = cache["resid.0"][:, -1]                                         # (B, C)
        heads, biases, mlps = [], [], []
        for layer, block in enumerate(self.transformer.h.children()):
            W_O = block.attn.c_proj.weight.data                               # (C, C)
            C = W_O.shape[0]
            z = cache[f"z.{layer}"][:, -1].reshape(-1, H, C // H)             # (B, H, D)
            per_head = np.einsum("bhd,chd->hbc", z, W_O.reshape(C, H, C // H))  # (H, B, C)
            heads.append(read(per_head))                                      # (H, B)
            b_O = block.attn.c_proj.bias
            biases.append(read(np.broadcast_to(b_O.data, emb.shape)) if b_O is not None
                          else np.zeros(emb.shape[0], emb.dtype))             # (B,)
            mlps.append(read(cache[f"mlp_out.{layer}"][:, -1]))               # (B,)
        beta = ln_f.bias.data if ln_f.bias is not None else np.zeros_like(gamma)
        return {"dla.embed": read(emb),                                       # (B,)
                "dla.heads": np.stack(heads).transpose(2, 0, 1),              # (B, L, H)
                "dla.attn_bias": np.stack(biases, axis=1),                    # (B, L)
                "dla.mlp": np.stack(mlps, axis=1),                            # (B, L)
                "dla.ln_bias": d @ beta}                                      # (B,)

    # --- attribution patching: the gradient of LD through the GPT's own backward -----------------
    def attribution_patching(self, clean: np.ndarray, corrupted: np.ndarray,
                             answer: np.ndarray, wrong: np.ndarray) -> dict[str, np.ndarray]:
        """dLD/dx_l on the corrupted prompt at every block input (B, L, T, C) and the
        first-order patching estimate AP = (x_l^clean - x_l^corrupt) . dLD/dx_l (B, L, T)."""
        L = self.config.n_layer
        _, clean_cache = self.run_with_cache(clean)
        self.track_intermediates = True
        logits, _ = self(np.asarray(corrupted))                           # (B, 1, V) GPT.forward
        rows = np.arange(logits.shape[0])
        grad_logits = np.zeros_like(logits)                               # dLD/dlogits
        grad_logits[rows, -1, answer] += 1.0
        grad_logits[rows, -1, wrong] -= 1.0
        self.zero_grad()
        self.backward(grad_logits)                                        # GPT.backward
        grads = np.stack([self.intermediate_grads[f"h.{layer}.x"] for layer in range(L)], axis=1)
        delta = np.stack([clean_cache[f"resid.{layer}"] - self.intermediates[f"h.{layer}.x"]
                          for layer in range(L)], axis=1)                     # (B, L, T, C)
        self.track_intermediates = False
        return {"grad.resid": grads,                                          # (B, L, T, C)
                "attribution.resid": np.sum(delta * grads, axis=-1)}          # (B, L, T)


def normalized_effect(patched: np.ndarray, ld_clean: np.ndarray,
                      ld_corrupted: np.ndarray) -> np.ndarray:
    """(LD_patched - LD_corrupt) / (LD_clean - LD_corrupt) per prompt: patched (B, ...)."""
    shape = (-1,) + (1,) * (np.ndim(patched) - 1)
    return ((patched - np.reshape(ld_corrupted, shape))
            / np.reshape(ld_clean - ld_corrupted, shape))


if __name__ == "__main__":
    config = GPTConfig(block_size=8, vocab_size=11, n_layer=2, n_head=2, n_embd=16)
    model = InterpretableGPT(config).eval()
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 11, (1, 8))
    corrupted = clean.copy()
    corrupted[0, 3] = (corrupted[0, 3] + 1) % 11
    maps = model.activation_patching(clean, corrupted, np.array([1]), np.array([2]))
    print({k: v.shape for k, v in maps.items()})
