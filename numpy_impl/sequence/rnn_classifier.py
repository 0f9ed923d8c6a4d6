r"""A sequence classifier with a from-scratch tanh RNN cell: the seed's ``SequenceClassifierRNN``.

An explicit recurrent cell with its own three parameters (no ``nn.RNN``), a loop over time, and
the last hidden state into a linear head: (batch, seq_len, input_size) -> (batch, output_size).

Forward, for x (B, T, I), with W_ih (I, H), W_hh (H, H), b_h (H,) -- the seed's layout, which
multiplies from the right (x W_ih, not torch.nn.RNN's x W_ihᵀ):

    h_{-1} = 0                                          (B, H)
    a_t    = x_t W_ih + h_{t-1} W_hh + b_h              (B, H)     t = 0 .. T-1
    h_t    = tanh(a_t)                                  (B, H)
    y      = h_{T-1} W_fcᵀ + b_fc                       (B, O)     the head, ``fc`` (a Linear)

Backward, given g = dL/dy. Only the last state reaches the head, so the gradient enters the
recurrence at t = T-1 and walks back through time:

    dh_{T-1} = g W_fc                                   (B, H)     through the head
    da_t     = dh_t ⊙ (1 - h_t²)                        (B, H)     through tanh
    dh_{t-1} = da_t W_hhᵀ                               (B, H)     through h_{t-1} W_hh
    dx_t     = da_t W_ihᵀ                               (B, I)     through x_t W_ih

and the parameters, each a sum over every step (the same weights are used at every t):

    dL/dW_ih = Σ_t x_tᵀ da_t      dL/dW_hh = Σ_t h_{t-1}ᵀ da_t      dL/db_h = Σ_t Σ_b da_t
    dL/dW_fc = gᵀ h_{T-1}         dL/db_fc = Σ_b g

It is torch.nn.RNN (tanh, one layer, batch_first) with weight_ih_l0 = W_ihᵀ, weight_hh_l0 =
W_hhᵀ, bias_ih_l0 = b_h and bias_hh_l0 = 0, followed by nn.Linear: the comparison's witness.

Initialization as the seed's: W_ih, W_hh ~ N(0, 1), b_h = 0; the head as torch.nn.Linear.
(N(0, 1) recurrent weights saturate tanh for larger H: a property of the seed's model, kept.)
"""
from __future__ import annotations

import numpy as np

from numpy_impl import random
from numpy_impl.layers.activations import tanh_backward
from numpy_impl.layers.linear import Linear
from numpy_impl.module import Module, Parameter


class SequenceClassifierRNN(Module):
    """forward(x (B, T, I)) -> logits (B, O); backward(dL/dlogits) -> dL/dx (B, T, I)."""

    def __init__(self, input_size: int = 6, hidden_size: int = 12, output_size: int = 3) -> None:
        super().__init__()
        rng, dtype = random.generator(), random.default_dtype()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.W_ih = Parameter(rng.standard_normal((input_size, hidden_size)).astype(dtype))
        self.W_hh = Parameter(rng.standard_normal((hidden_size, hidden_size)).astype(dtype))
        self.b_h = Parameter(np.zeros(hidden_size, dtype))
        self.fc = Linear(hidden_size, output_size)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"expected input of shape (batch, seq_len, {self.input_size}), "
                             f"got {x.shape}")
        if x.shape[1] == 0:
            raise ValueError("expected a sequence of at least one step, got seq_len = 0")
        batch, steps, _ = x.shape
        W_ih, W_hh, b_h = self.W_ih.data, self.W_hh.data, self.b_h.data
        hs = np.empty((steps, batch, self.hidden_size), dtype=x.dtype)   # (T, B, H)
        h = np.zeros((batch, self.hidden_size), dtype=x.dtype)          # (B, H)  h_{-1} = 0
        for t in range(steps):                                          # the recurrence
            h = np.tanh(x[:, t] @ W_ih + h @ W_hh + b_h)                # (B, H)  h_t
            hs[t] = h
        self._cache = (x, hs)
        self.intermediates = {"h_last": h}                              # what the head reads
        return self.fc(h)                                               # (B, O)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x, hs = self._cache
        steps = hs.shape[0]
        dh = self.fc.backward(grad_output)                              # (B, H) through the head
        self.intermediate_grads = {"h_last": dh}
        da = np.empty_like(hs)                                          # (T, B, H)
        for t in range(steps - 1, -1, -1):                              # back through time
            da[t] = tanh_backward(dh, hs[t])                            # (B, H) through tanh
            dh = da[t] @ self.W_hh.data.T                               # (B, H) into h_{t-1}
        h_prev = np.concatenate([np.zeros_like(hs[:1]), hs[:-1]])       # (T, B, H) h_{t-1}
        rows_da = da.reshape(-1, self.hidden_size)                      # (T·B, H) every (t, b)
        x_tb = x.swapaxes(0, 1)                                         # (T, B, I)
        self.W_ih.grad += x_tb.reshape(-1, self.input_size).T @ rows_da  # (I, H) Σ_t x_tᵀ da_t
        self.W_hh.grad += h_prev.reshape(-1, self.hidden_size).T @ rows_da  # (H, H) Σ h_{t-1}ᵀ da_t
        self.b_h.grad += rows_da.sum(axis=0)                            # (H,) b_h at every step
        return (da @ self.W_ih.data.T).swapaxes(0, 1)                   # (B, T, I) da_t W_ihᵀ

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"output_size={self.output_size}")
