r"""The MLP language model of Bengio et al. (2003), character level, as in makemore part 2:
read the previous ``block_size`` characters, predict the next one.

Data. Every word w = c_1 .. c_L, framed by the boundary token 0 ('.'), gives L + 1 examples:
the context of the ``block_size`` previous tokens (0 before the word starts) and the target

    ...  -> c_1,   ..c_1 -> c_2,   ...,   c_{L-2} c_{L-1} c_L -> 0   (block_size = 3)

Forward, for a batch of contexts idx (B, T) with targets y (B,); T = block_size, E = n_embd,
H = n_hidden, V = vocab_size:

    e      = C[idx]                          (B, T, E)   embedding lookup, C: (V, E)
    x      = concat_t e[:, t, :]             (B, T*E)    the T embeddings side by side
    a      = x W1^T + b1                     (B, H)      hidden layer, W1: (H, T*E)
    h      = tanh(a)                         (B, H)
    logits = h W2^T + b2                     (B, V)      output layer, W2: (V, H)
    L      = -1/B sum_b log softmax(logits_b)[y_b]       cross-entropy, ()

Backward, given g = dL'/dL (1 in training), one chain-rule step per layer, each taken by the
layer's own ``backward`` (numpy_impl.layers: CrossEntropyLoss, Linear, Tanh, Embedding):

    dlogits = g/B (softmax(logits) - onehot(y))       cross-entropy
    dh  = dlogits W2,   dW2 = dlogits^T h,   db2 = sum_b dlogits
    da  = dh (1 - h^2)                                 tanh
    dx  = da W1,        dW1 = da^T x,        db1 = sum_b da
    de  = dx.reshape(B, T, E)                          undo the concatenation
    dC[v] = sum of de[b, t] over every (b, t) with idx[b, t] = v      scatter-add

Without targets, ``forward(idx)`` returns the logits and ``backward`` takes dL/dlogits.

Training: minibatch SGD (numpy_impl.training.optimizers.SGD), one ``train_step`` per batch.
Sampling draws word after word from p(next | context) = softmax(logits) by the inverse CDF:
with a uniform u, the next token is the smallest i with cdf_i = p_0 + .. + p_i > u. The
uniforms are an input, so twins given the same uniforms draw the same words.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from numpy_impl.layers.activations import Tanh, softmax
from numpy_impl.layers.embedding import Embedding
from numpy_impl.layers.linear import Linear
from numpy_impl.layers.losses import CrossEntropyLoss
from numpy_impl.module import Module

BOUNDARY_ID = 0  # '.' starts and ends every word


def build_dataset(words: Sequence[str], stoi: Mapping[str, int],
                  block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Contexts X (N, block_size) and targets Y (N,), int64, N = sum over words of (len + 1).

    Each word becomes a chunk [0]*block_size + its ids + [0] of one token stream; the examples
    are the windows of block_size + 1 tokens that lie inside one chunk (one sliding-window view).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1, got {block_size}")
    lengths = np.array([len(w) for w in words], dtype=np.int64)          # (W,)
    chars = np.array([stoi[ch] for ch in "".join(words)], dtype=np.int64)  # (sum L,)
    chunk = block_size + lengths + 1                                      # (W,) padded lengths
    chunk_start = np.cumsum(chunk) - chunk                                # (W,)
    # character j of word w sits at chunk_start[w] + block_size + j
    word_start = np.cumsum(lengths) - lengths                             # (W,) in `chars`
    position = np.repeat(chunk_start + block_size - word_start, lengths) \
        + np.arange(chars.size)                                           # (sum L,)
    stream = np.full(chunk.sum(), BOUNDARY_ID, dtype=np.int64)            # (S,)
    stream[position] = chars
    windows = sliding_window_view(stream, block_size + 1)                 # (S - T, T + 1)
    chunk_of = np.repeat(np.arange(len(words)), chunk)                    # (S,)
    inside = chunk_of[:-block_size] == chunk_of[block_size:]              # (S - T,)
    examples = windows[inside]                                            # (N, T + 1)
    return examples[:, :block_size].copy(), examples[:, block_size].copy()


class MLPLanguageModel(Module):
    """embedding -> concatenate -> Linear -> tanh -> Linear (-> cross-entropy).

    ``forward(idx, targets=None)``: idx (B, block_size) token ids; returns the logits (B, V),
    or the mean cross-entropy (a 0-d array) when targets (B,) are given.
    """

    def __init__(self, vocab_size: int = 27, block_size: int = 3, n_embd: int = 10,
                 n_hidden: int = 200) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.block_size = block_size
        self.n_embd = n_embd
        self.n_hidden = n_hidden
        self.embedding = Embedding(vocab_size, n_embd)                # C
        self.hidden = Linear(block_size * n_embd, n_hidden)           # W1, b1
        self.tanh = Tanh()
        self.output = Linear(n_hidden, vocab_size)                    # W2, b2
        self.criterion = CrossEntropyLoss()

    def forward(self, idx: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
        idx = np.asarray(idx)
        if idx.ndim != 2 or idx.shape[1] != self.block_size:
            raise ValueError(f"expected contexts of shape (B, {self.block_size}), "
                             f"got {idx.shape}")
        emb = self.embedding(idx)                                     # (B, T, E)
        x = emb.reshape(idx.shape[0], -1)                             # (B, T*E)
        h = self.tanh(self.hidden(x))                                 # (B, H)
        logits = self.output(h)                                       # (B, V)
        self._emb_shape, self._with_loss = emb.shape, targets is not None
        if targets is None:
            return logits
        return self.criterion(logits, np.asarray(targets))           # ()

    def backward(self, grad_output: np.ndarray) -> None:
        # cross-entropy: dL/dlogits = g/B (softmax - onehot(targets)), when the loss was formed
        dlogits = self.criterion.backward(grad_output) if self._with_loss \
            else grad_output                                          # (B, V)
        dh = self.output.backward(dlogits)                            # (B, H)  logits = h W2^T + b2
        da = self.tanh.backward(dh)                                   # (B, H)  h = tanh(a)
        dx = self.hidden.backward(da)                                 # (B, T*E) a = x W1^T + b1
        self.embedding.backward(dx.reshape(self._emb_shape))         # (V, E)  scatter-add into C
        return None                                                   # token ids: no gradient

    def extra_repr(self) -> str:
        return (f"vocab_size={self.vocab_size}, block_size={self.block_size}, "
                f"n_embd={self.n_embd}, n_hidden={self.n_hidden}")


def train_step(model: MLPLanguageModel, optimizer: Any, X: np.ndarray, Y: np.ndarray) -> float:
    """One SGD step on the batch (X, Y): forward, zero the grads, backward, update; the loss."""
    loss = model(X, Y)                                                # ()
    optimizer.zero_grad()
    model.backward(np.ones((), dtype=loss.dtype))                     # dL/dL = 1
    optimizer.step()
    return float(loss)


def evaluate(model: MLPLanguageModel, X: np.ndarray, Y: np.ndarray) -> float:
    """The mean cross-entropy over a whole split (no gradient, no update)."""
    return float(model(X, Y))


def sample(model: MLPLanguageModel, uniforms: np.ndarray) -> np.ndarray:
    """Words drawn by inverse CDF with the given uniforms (n, max_len): row i, column t is
    the t-th token of word i; the word ends with its first 0, and zeros follow it.

    The n words are drawn together: a loop over positions, not over words.
    """
    n, max_len = uniforms.shape
    context = np.full((n, model.block_size), BOUNDARY_ID, dtype=np.int64)  # (n, T)
    tokens = np.zeros((n, max_len), dtype=np.int64)                        # (n, max_len)
    done = np.zeros(n, dtype=bool)                                         # (n,)
    for t in range(max_len):
        probs = softmax(model(context), 1)                                 # (n, V)
        cdf = np.cumsum(probs, axis=1)                                     # (n, V)
        # the smallest i with cdf_i > u is the number of cdf entries <= u; rounding can
        # leave cdf_{V-1} a hair below 1, so a u above it takes the last token
        nxt = np.minimum((cdf <= uniforms[:, t:t + 1]).sum(axis=1), model.vocab_size - 1)
        nxt = np.where(done, BOUNDARY_ID, nxt)                             # (n,)
        tokens[:, t] = nxt
        done |= nxt == BOUNDARY_ID
        if done.all():
            break
        context = np.concatenate([context[:, 1:], nxt[:, None]], axis=1)  # slide the window
    return tokens
