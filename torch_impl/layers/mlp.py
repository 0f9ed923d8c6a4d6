r"""The character-level MLP of Karpathy's "becoming a backprop ninja" (makemore, part 4) in
PyTorch: the forward written as the same atomic steps as the NumPy twin, each intermediate
kept with ``retain_grad()`` so that autograd's gradient of every step can be compared with
the hand-derived one.

    emb = C[idx]; embcat = emb.view(B, T*E); hprebn = embcat @ W1 + b1
    bnmeani = mean_b hprebn; bndiff = hprebn - bnmeani; bndiff2 = bndiff ** 2
    bnvar = mean_b bndiff2 (biased, as torch's BatchNorm); bnvar_inv = (bnvar + eps) ** -1/2
    bnraw = bndiff * bnvar_inv; hpreact = bngain * bnraw + bnbias; h = tanh(hpreact)
    logits = h @ W2 + b2; norm_logits = logits - max_v logits (detached); counts = exp(...)
    probs = counts / sum_v counts; logprobs = log(probs); loss = -mean_b logprobs[b, y_b]

Running statistics follow ``torch.nn.BatchNorm1d``: momentum update, unbiased running
variance; eval mode normalizes with them. Initialization as in the lecture. ``bessel=True`` is
the lecture's own variant: the batch variance that normalizes is 1/(B-1) sum_b bndiff2.
"""
from __future__ import annotations

import torch
from torch import nn


class CharMLP(nn.Module):
    """Same constructor, parameter and buffer names as the NumPy twin (the lecture's names)."""

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
        self.C = nn.Parameter(torch.empty(vocab_size, n_embd))
        self.W1 = nn.Parameter(torch.empty(n_in, n_hidden))
        self.b1 = nn.Parameter(torch.empty(n_hidden))
        self.W2 = nn.Parameter(torch.empty(n_hidden, vocab_size))
        self.b2 = nn.Parameter(torch.empty(vocab_size))
        self.bngain = nn.Parameter(torch.empty(1, n_hidden))
        self.bnbias = nn.Parameter(torch.empty(1, n_hidden))
        self.register_buffer("bnmean_running", torch.zeros(1, n_hidden))
        self.register_buffer("bnvar_running", torch.ones(1, n_hidden))
        self.intermediates: dict[str, torch.Tensor] = {}
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # the lecture's init: small non-zero biases, gain near one (zeros would hide bugs)
        n_in = self.n_embd * self.block_size
        nn.init.normal_(self.C)
        nn.init.normal_(self.W1, std=(5 / 3) / n_in ** 0.5)
        nn.init.normal_(self.b1, std=0.1)
        nn.init.normal_(self.W2, std=0.1)
        nn.init.normal_(self.b2, std=0.1)
        nn.init.normal_(self.bngain, mean=1.0, std=0.1)
        nn.init.normal_(self.bnbias, std=0.1)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = idx.shape[0]
        if self.training and n < 2:
            raise ValueError(f"expected more than 1 value per channel when training, "
                             f"got a batch of {n}")
        emb = self.C[idx]                                           # (B, T, E)
        embcat = emb.view(n, -1)                                    # (B, T*E)
        hprebn = embcat @ self.W1 + self.b1                         # (B, H)
        steps = dict(emb=emb, embcat=embcat, hprebn=hprebn)
        if self.training:
            bnmeani = 1.0 / n * hprebn.sum(0, keepdim=True)         # (1, H)
            bndiff = hprebn - bnmeani                               # (B, H)
            bndiff2 = bndiff ** 2                                   # (B, H)
            divisor = n - 1 if self.bessel else n                   # 1/B, or 1/(B-1) (bessel)
            bnvar = 1.0 / divisor * bndiff2.sum(0, keepdim=True)    # (1, H)
            with torch.no_grad():  # running estimates: unbiased variance, as BatchNorm1d
                m = self.momentum
                unbiased = bnvar if self.bessel else bnvar * (n / (n - 1))
                self.bnmean_running.mul_(1 - m).add_(m * bnmeani)
                self.bnvar_running.mul_(1 - m).add_(m * unbiased)
            steps.update(bnmeani=bnmeani, bndiff=bndiff, bndiff2=bndiff2, bnvar=bnvar)
        else:
            bnmeani = self.bnmean_running                           # (1, H) constants
            bndiff = hprebn - bnmeani                               # (B, H)
            bnvar = self.bnvar_running                              # (1, H)
            steps.update(bnmeani=bnmeani, bndiff=bndiff, bnvar=bnvar)
        bnvar_inv = (bnvar + self.eps) ** -0.5                      # (1, H)
        bnraw = bndiff * bnvar_inv                                  # (B, H)
        hpreact = self.bngain * bnraw + self.bnbias                 # (B, H)
        h = torch.tanh(hpreact)                                     # (B, H)
        logits = h @ self.W2 + self.b2                              # (B, V)
        # the shift only keeps exp in range; detached, since the loss does not depend on it
        logit_maxes = logits.max(1, keepdim=True).values.detach()   # (B, 1)
        norm_logits = logits - logit_maxes                          # (B, V)
        counts = norm_logits.exp()                                  # (B, V)
        counts_sum = counts.sum(1, keepdim=True)                    # (B, 1)
        counts_sum_inv = counts_sum ** -1                           # (B, 1)
        probs = counts * counts_sum_inv                             # (B, V)
        logprobs = probs.log()                                      # (B, V)
        loss = -logprobs[torch.arange(n), targets].mean()           # ()
        steps.update(bnvar_inv=bnvar_inv, bnraw=bnraw, hpreact=hpreact, h=h, logits=logits,
                     logit_maxes=logit_maxes, norm_logits=norm_logits, counts=counts,
                     counts_sum=counts_sum, counts_sum_inv=counts_sum_inv, probs=probs,
                     logprobs=logprobs)
        for tensor in steps.values():
            if tensor.requires_grad:
                tensor.retain_grad()  # keep autograd's gradient of every step for comparison
        self.intermediates = steps
        return loss

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_embd={self.n_embd}, n_hidden={self.n_hidden}")
