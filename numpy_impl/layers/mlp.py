r"""The character-level MLP of Karpathy's "becoming a backprop ninja" (makemore, part 4),
with every gradient derived by hand, one atomic step at a time.

The model reads ``block_size`` previous characters and scores the next one:

    emb            = C[idx]                              (B, T, E)   embedding lookup
    embcat         = emb.reshape(B, T*E)                 (B, T*E)    concatenate the T embeddings
    hprebn         = embcat @ W1 + b1                    (B, H)      first linear layer
    bnmeani        = 1/B sum_b hprebn_b                  (1, H)      batch mean
    bndiff         = hprebn - bnmeani                    (B, H)
    bndiff2        = bndiff ** 2                         (B, H)
    bnvar          = 1/B sum_b bndiff2_b                 (1, H)      BIASED batch variance
    bnvar_inv      = (bnvar + eps) ** -1/2               (1, H)
    bnraw          = bndiff * bnvar_inv                  (B, H)      normalized
    hpreact        = bngain * bnraw + bnbias             (B, H)      batchnorm's affine step
    h              = tanh(hpreact)                       (B, H)
    logits         = h @ W2 + b2                         (B, V)      second linear layer
    logit_maxes    = max_v logits                        (B, 1)      a constant shift, for range
    norm_logits    = logits - logit_maxes                (B, V)
    counts         = exp(norm_logits)                    (B, V)
    counts_sum     = sum_v counts                        (B, 1)
    counts_sum_inv = counts_sum ** -1                    (B, 1)
    probs          = counts * counts_sum_inv             (B, V)      softmax
    logprobs       = log(probs)                          (B, V)
    loss           = -1/B sum_b logprobs[b, targets_b]   ()          cross-entropy

The variance: the lecture normalizes with Bessel's 1/(B-1); ``torch.nn.BatchNorm1d`` (and
``F.batch_norm``) normalize with the biased 1/B and keep the *unbiased* variance only in the
running estimate. We follow torch, so that ``F.batch_norm`` can witness the torch twin:

    bnmean_running <- (1 - momentum) bnmean_running + momentum bnmeani
    bnvar_running  <- (1 - momentum) bnvar_running  + momentum bnvar B/(B-1)

``bessel=True`` is the lecture's own variant: bnvar = 1/(B-1) sum_b bndiff2 (already
unbiased, so the running update takes it as is), and in the backward
dbndiff2 = 1/(B-1) dbnvar. It lets the lecture's solution be checked exactly.

In eval mode the running statistics replace the batch ones (bnmeani = bnmean_running,
bnvar = bnvar_running: constants, so no gradient flows into them, and bndiff2 is not formed).

Backward, for an upstream gradient g = dL'/dloss, walks the chain in reverse; each line of
``CharMLP.backward`` is one chain-rule step (d<x> means dL'/dx):

    dlogprobs[b, targets_b] = -g/B, zero elsewhere        loss picks one log-prob per row
    dprobs          = dlogprobs / probs                   d log p = dp / p
    dcounts_sum_inv = sum_v counts * dprobs               counts_sum_inv was broadcast over v
    dcounts         = counts_sum_inv * dprobs             first use of counts
    dcounts_sum     = -counts_sum ** -2 * dcounts_sum_inv d x^-1 = -x^-2 dx
    dcounts        += dcounts_sum                         second use: counts_sum = sum_v counts
    dnorm_logits    = counts * dcounts                    d exp(x) = exp(x) dx
    dlogits         = dnorm_logits                        logit_maxes is a constant shift
    dh = dlogits @ W2^T,  dW2 = h^T @ dlogits,  db2 = sum_b dlogits
    dhpreact        = (1 - h^2) * dh                      d tanh(x) = (1 - tanh^2) dx
    dbngain = sum_b bnraw * dhpreact,  dbnraw = bngain * dhpreact,  dbnbias = sum_b dhpreact
    dbndiff         = bnvar_inv * dbnraw                  first use of bndiff
    dbnvar_inv      = sum_b bndiff * dbnraw               bnvar_inv was broadcast over b
    dbnvar          = -1/2 (bnvar + eps) ** -3/2 * dbnvar_inv
    dbndiff2        = 1/B * dbnvar  (broadcast over b)    bnvar is a mean over b
    dbndiff        += 2 bndiff * dbndiff2                 second use of bndiff
    dbnmeani        = -sum_b dbndiff                      bndiff = hprebn - bnmeani
    dhprebn         = dbndiff + 1/B dbnmeani              hprebn used twice: directly, via mean
    dembcat = dhprebn @ W1^T,  dW1 = embcat^T @ dhprebn,  db1 = sum_b dhprebn
    demb            = dembcat.reshape(B, T, E)            undo the concatenation
    dC[i]          += demb[b, t] for every idx[b, t] = i  scatter-add the lookups

(In train mode db1 is zero in exact arithmetic: batchnorm subtracts the batch mean, which
cancels any per-feature shift, so b1 cannot change the loss.) logit_maxes gets no gradient:
the loss does not depend on the shift, and autograd's gradient for it is pure rounding noise.
"""
from __future__ import annotations

import numpy as np

from numpy_impl import random
from numpy_impl.layers.activations import tanh_backward
from numpy_impl.module import Module, Parameter


class CharMLP(Module):
    """embedding -> linear -> batchnorm -> tanh -> linear -> cross-entropy, the lecture's MLP.

    ``forward(idx, targets)``: ``idx`` (B, block_size) character indices, ``targets`` (B,)
    the next characters; returns the mean cross-entropy loss (a 0-d array). Parameters and
    buffers carry the lecture's names; ``intermediates`` holds every step of the forward.
    """

    def __init__(self, vocab_size: int = 27, block_size: int = 3, n_embd: int = 10,
                 n_hidden: int = 64, momentum: float = 0.001, eps: float = 1e-5,
                 bessel: bool = False) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.n_embd = n_embd
        self.n_hidden = n_hidden
        self.momentum = momentum
        self.eps = eps
        self.bessel = bessel  # the lecture's variant: normalize with 1/(B-1), not torch's 1/B
        n_in = n_embd * block_size
        # The lecture's init: small non-zero biases and a gain near one, because zeros or
        # ones would hide a forgotten term in a hand-written backward.
        rng, dtype = random.generator(), random.default_dtype()
        self.C = Parameter(rng.standard_normal((vocab_size, n_embd)).astype(dtype))
        self.W1 = Parameter((rng.standard_normal((n_in, n_hidden)) * (5 / 3) / n_in ** 0.5)
                            .astype(dtype))
        self.b1 = Parameter((rng.standard_normal(n_hidden) * 0.1).astype(dtype))
        self.W2 = Parameter((rng.standard_normal((n_hidden, vocab_size)) * 0.1).astype(dtype))
        self.b2 = Parameter((rng.standard_normal(vocab_size) * 0.1).astype(dtype))
        self.bngain = Parameter((rng.standard_normal((1, n_hidden)) * 0.1 + 1.0).astype(dtype))
        self.bnbias = Parameter((rng.standard_normal((1, n_hidden)) * 0.1).astype(dtype))
        self.register_buffer("bnmean_running", np.zeros((1, n_hidden), dtype=dtype))
        self.register_buffer("bnvar_running", np.ones((1, n_hidden), dtype=dtype))
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, idx: np.ndarray, targets: np.ndarray) -> np.ndarray:
        n = idx.shape[0]
        if self.training and n < 2:
            raise ValueError(f"expected more than 1 value per channel when training, "
                             f"got a batch of {n}")
        emb = self.C.data[idx]                                      # (B, T, E)
        embcat = emb.reshape(n, -1)                                 # (B, T*E)
        hprebn = embcat @ self.W1.data + self.b1.data               # (B, H)
        if self.training:
            bnmeani = 1.0 / n * hprebn.sum(0, keepdims=True)        # (1, H)
            bndiff = hprebn - bnmeani                               # (B, H)
            bndiff2 = bndiff ** 2                                   # (B, H)
            divisor = n - 1 if self.bessel else n                   # 1/B, or 1/(B-1) (bessel)
            bnvar = 1.0 / divisor * bndiff2.sum(0, keepdims=True)   # (1, H)
            # running estimates keep the unbiased variance, as torch's BatchNorm does
            m = self.momentum
            unbiased = bnvar if self.bessel else bnvar * (n / (n - 1))  # (1, H)
            self.bnmean_running[...] = (1 - m) * self.bnmean_running + m * bnmeani
            self.bnvar_running[...] = (1 - m) * self.bnvar_running + m * unbiased
        else:
            bnmeani = self.bnmean_running                           # (1, H) constants
            bndiff = hprebn - bnmeani                               # (B, H)
            bnvar = self.bnvar_running                              # (1, H)
            bndiff2 = None
        bnvar_inv = (bnvar + self.eps) ** -0.5                      # (1, H)
        bnraw = bndiff * bnvar_inv                                  # (B, H)
        hpreact = self.bngain.data * bnraw + self.bnbias.data       # (B, H)
        h = np.tanh(hpreact)                                        # (B, H)
        logits = h @ self.W2.data + self.b2.data                    # (B, V)
        logit_maxes = logits.max(1, keepdims=True)                  # (B, 1)
        norm_logits = logits - logit_maxes                          # (B, V) exp cannot overflow
        counts = np.exp(norm_logits)                                # (B, V)
        counts_sum = counts.sum(1, keepdims=True)                   # (B, 1)
        counts_sum_inv = counts_sum ** -1                           # (B, 1)
        probs = counts * counts_sum_inv                             # (B, V)
        logprobs = np.log(probs)                                    # (B, V)
        loss = -logprobs[np.arange(n), targets].mean()              # ()

        self.intermediates = dict(emb=emb, embcat=embcat, hprebn=hprebn, bnmeani=bnmeani,
                                  bndiff=bndiff, bndiff2=bndiff2, bnvar=bnvar,
                                  bnvar_inv=bnvar_inv, bnraw=bnraw, hpreact=hpreact, h=h,
                                  logits=logits, logit_maxes=logit_maxes,
                                  norm_logits=norm_logits, counts=counts,
                                  counts_sum=counts_sum, counts_sum_inv=counts_sum_inv,
                                  probs=probs, logprobs=logprobs)
        if not self.training:
            del self.intermediates["bndiff2"]  # eval mode forms no batch variance
        self._idx, self._targets = idx, targets
        return np.asarray(loss)

    def backward(self, grad_output: np.ndarray) -> None:
        v = self.intermediates
        idx, targets = self._idx, self._targets
        n = idx.shape[0]
        g = np.asarray(grad_output, dtype=v["logprobs"].dtype)
        # loss = -mean_b logprobs[b, targets_b]: each picked log-prob gets -g/B
        dlogprobs = np.zeros_like(v["logprobs"])                    # (B, V)
        dlogprobs[np.arange(n), targets] = -g / n
        # logprobs = log(probs)
        dprobs = dlogprobs / v["probs"]                             # (B, V)
        # probs = counts * counts_sum_inv: counts_sum_inv was broadcast along v -> sum over v
        dcounts_sum_inv = (v["counts"] * dprobs).sum(1, keepdims=True)  # (B, 1)
        dcounts = v["counts_sum_inv"] * dprobs                      # (B, V) first branch
        # counts_sum_inv = counts_sum ** -1
        dcounts_sum = -v["counts_sum"] ** -2 * dcounts_sum_inv      # (B, 1)
        # counts_sum = sum_v counts: every count receives the row's gradient (second branch)
        dcounts = dcounts + dcounts_sum                             # (B, V)
        # counts = exp(norm_logits)
        dnorm_logits = v["counts"] * dcounts                        # (B, V)
        # norm_logits = logits - logit_maxes, the shift treated as a constant
        dlogits = dnorm_logits                                      # (B, V)
        # logits = h @ W2 + b2
        dh = dlogits @ self.W2.data.T                               # (B, H)
        self.W2.grad += v["h"].T @ dlogits                          # (H, V)
        self.b2.grad += dlogits.sum(0)                              # (V,)
        # h = tanh(hpreact)
        dhpreact = tanh_backward(dh, v["h"])                        # (B, H) dh * (1 - h^2)
        # hpreact = bngain * bnraw + bnbias (bngain, bnbias broadcast over b -> sum over b)
        self.bngain.grad += (v["bnraw"] * dhpreact).sum(0, keepdims=True)  # (1, H)
        self.bnbias.grad += dhpreact.sum(0, keepdims=True)          # (1, H)
        dbnraw = self.bngain.data * dhpreact                        # (B, H)
        # bnraw = bndiff * bnvar_inv
        dbndiff = v["bnvar_inv"] * dbnraw                           # (B, H) first branch
        grads = dict(logprobs=dlogprobs, probs=dprobs, counts_sum_inv=dcounts_sum_inv,
                     counts_sum=dcounts_sum, counts=dcounts, norm_logits=dnorm_logits,
                     logits=dlogits, h=dh, hpreact=dhpreact, bnraw=dbnraw)
        if self.training:
            dbnvar_inv = (v["bndiff"] * dbnraw).sum(0, keepdims=True)  # (1, H)
            # bnvar_inv = (bnvar + eps) ** -1/2
            dbnvar = -0.5 * (v["bnvar"] + self.eps) ** -1.5 * dbnvar_inv  # (1, H)
            # bnvar = 1/B sum_b bndiff2 (1/(B-1) with bessel): spread evenly over b
            divisor = n - 1 if self.bessel else n
            dbndiff2 = np.broadcast_to(1.0 / divisor * dbnvar, v["bndiff2"].shape)  # (B, H)
            # bndiff2 = bndiff ** 2 (second branch into bndiff)
            dbndiff = dbndiff + 2 * v["bndiff"] * dbndiff2          # (B, H)
            # bndiff = hprebn - bnmeani: bnmeani was broadcast over b -> minus the sum over b
            dbnmeani = -dbndiff.sum(0, keepdims=True)               # (1, H)
            # bnmeani = 1/B sum_b hprebn (second branch into hprebn)
            dhprebn = dbndiff + 1.0 / n * dbnmeani                  # (B, H)
            grads.update(bnvar_inv=dbnvar_inv, bnvar=dbnvar, bndiff2=dbndiff2,
                         bnmeani=dbnmeani)
        else:
            # running statistics are constants: hprebn reaches the loss through bndiff only
            dhprebn = dbndiff                                       # (B, H)
        # hprebn = embcat @ W1 + b1
        dembcat = dhprebn @ self.W1.data.T                          # (B, T*E)
        self.W1.grad += v["embcat"].T @ dhprebn                     # (T*E, H)
        self.b1.grad += dhprebn.sum(0)                              # (H,)
        # embcat = emb.reshape(B, T*E)
        demb = dembcat.reshape(v["emb"].shape)                      # (B, T, E)
        # emb = C[idx]: a row used k times collects k gradients (scatter-add, not assign)
        np.add.at(self.C.grad, idx, demb)                           # (V, E)
        grads.update(bndiff=dbndiff, hprebn=dhprebn, embcat=dembcat, emb=demb)
        self.intermediate_grads = {k: np.ascontiguousarray(grads[k]) for k in v if k in grads}
        return None

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_embd={self.n_embd}, n_hidden={self.n_hidden}")
