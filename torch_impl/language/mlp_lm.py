r"""The MLP language model of Bengio et al. (2003), character level, in PyTorch: the forward
is written out, autograd does the backward, ``torch.optim.SGD`` the update.

    e      = C[idx]                       (B, T, E)    embedding
    x      = e.view(B, T*E)               (B, T*E)     concatenation
    h      = tanh(x W1^T + b1)            (B, H)
    logits = h W2^T + b2                  (B, V)
    L      = cross_entropy(logits, y)     ()

Data: each word framed by the boundary 0 gives len + 1 (context, next token) examples,
built with ``Tensor.unfold`` (a sliding window) over one token stream. Sampling: inverse CDF
with given uniforms, ``torch.searchsorted(cdf, u, right=True)`` = the smallest i with
cdf_i > u, so the twins draw the same words from the same uniforms.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

from torch_impl.layers.activations import Tanh
from torch_impl.layers.embedding import Embedding
from torch_impl.layers.linear import Linear
from torch_impl.layers.losses import CrossEntropyLoss

BOUNDARY_ID = 0


def build_dataset(words: Sequence[str], stoi: Mapping[str, int],
                  block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Contexts X (N, block_size) and targets Y (N,), int64: windows of one padded stream."""
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    lengths = torch.tensor([len(w) for w in words], dtype=torch.int64)    # (W,)
    chars = torch.tensor([stoi[ch] for ch in "".join(words)], dtype=torch.int64)
    chunk = block_size + lengths + 1                                      # (W,)
    chunk_start = torch.cumsum(chunk, 0) - chunk
    word_start = torch.cumsum(lengths, 0) - lengths
    position = torch.repeat_interleave(chunk_start + block_size - word_start, lengths) \
        + torch.arange(chars.numel())                                     # (sum L,)
    stream = torch.full((int(chunk.sum()),), BOUNDARY_ID, dtype=torch.int64)
    stream[position] = chars
    windows = stream.unfold(0, block_size + 1, 1)                         # (S - T, T + 1)
    chunk_of = torch.repeat_interleave(torch.arange(len(words)), chunk)   # (S,)
    inside = chunk_of[:-block_size] == chunk_of[block_size:]
    examples = windows[inside]                                            # (N, T + 1)
    return examples[:, :block_size].clone(), examples[:, block_size].clone()


class MLPLanguageModel(nn.Module):
    """Same constructor, submodules and parameter names as the NumPy twin."""

    def __init__(self, vocab_size: int = 27, block_size: int = 3, n_embd: int = 10,
                 n_hidden: int = 200) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.n_embd = n_embd
        self.n_hidden = n_hidden
        self.embedding = Embedding(vocab_size, n_embd)
        self.hidden = Linear(block_size * n_embd, n_hidden)
        self.tanh = Tanh()
        self.output = Linear(n_hidden, vocab_size)
        self.criterion = CrossEntropyLoss()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        if idx.dim() != 2 or idx.shape[1] != self.block_size:
            raise ValueError(f"expected contexts of shape (B, {self.block_size}), "
                             f"got {tuple(idx.shape)}")
        emb = self.embedding(idx)                                     # (B, T, E)
        x = emb.view(idx.shape[0], -1)                                # (B, T*E)
        h = self.tanh(self.hidden(x))                                 # (B, H)
        logits = self.output(h)                                       # (B, V)
        if targets is None:
            return logits
        return self.criterion(logits, targets)                       # ()

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_embd={self.n_embd}, n_hidden={self.n_hidden}")


def train_step(model: MLPLanguageModel, optimizer: torch.optim.Optimizer, X: torch.Tensor,
               Y: torch.Tensor) -> float:
    """One step: forward, zero the grads, autograd's backward, the optimizer's update."""
    loss = model(X, Y)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def evaluate(model: MLPLanguageModel, X: torch.Tensor, Y: torch.Tensor) -> float:
    return model(X, Y).item()


@torch.no_grad()
def sample(model: MLPLanguageModel, uniforms: torch.Tensor) -> torch.Tensor:
    """Words drawn by inverse CDF with the given uniforms (n, max_len); 0 ends a word."""
    n, max_len = uniforms.shape
    context = torch.full((n, model.block_size), BOUNDARY_ID, dtype=torch.int64)
    tokens = torch.zeros(n, max_len, dtype=torch.int64)
    done = torch.zeros(n, dtype=torch.bool)
    for t in range(max_len):
        probs = torch.softmax(model(context), dim=1)                  # (n, V)
        cdf = torch.cumsum(probs, dim=1)                              # (n, V)
        u = uniforms[:, t:t + 1].to(cdf.dtype).contiguous()          # (n, 1)
        nxt = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp(max=model.vocab_size - 1)
        nxt = torch.where(done, BOUNDARY_ID, nxt)
        tokens[:, t] = nxt
        done |= nxt == BOUNDARY_ID
        if done.all():
            break
        context = torch.cat([context[:, 1:], nxt[:, None]], dim=1)
    return tokens
