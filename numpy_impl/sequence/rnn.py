r"""The Elman recurrent network (``torch.nn.RNN``): forward and backprop through time by hand.

Forward, layer l = 0 .. L-1, time t = 0 .. T-1 (layer 0 reads the input, layer l > 0 reads the
hidden states of layer l - 1; f is tanh or ReLU):

    a_t^l = x_t^l W_ih^lᵀ + b_ih^l + h_{t-1}^l W_hh^lᵀ + b_hh^l          (B, H)
    h_t^l = f(a_t^l),      h_{-1}^l = h0[l] (zeros if no h0 is given)     (B, H)
    x_t^{l+1} = h_t^l

    output = (h_0^{L-1}, ..., h_{T-1}^{L-1})      (T, B, H)   (B, T, H) with batch_first
    h_n    = (h_{T-1}^0, ..., h_{T-1}^{L-1})      (L, B, H)

Backward through time, given G_t = dL/d output_t and dL/dh_n. Within a layer, h_t feeds two
places -- the layer's output at t (or the next layer's input) and the next step's a_{t+1} --
so its gradient is the sum of both, walked from t = T-1 down to 0:

    dh_t = G_t + da_{t+1} W_hh             (B, H)   with da_T W_hh := dL/dh_n[l]
    da_t = dh_t ⊙ f'(a_t)                  (B, H)   tanh: 1 - h_t²;  ReLU: 1[h_t > 0]
    dL/dh0[l] = da_0 W_hh

Only that recurrence needs the loop; the rest is one matrix product over all T·B rows:

    dL/dW_ih = Σ_t da_tᵀ x_t          dL/dW_hh = Σ_t da_tᵀ h_{t-1}
    dL/db_ih = dL/db_hh = Σ_t Σ_b da_t
    dL/dx_t  = da_t W_ih              (for layer l > 0 this is G_t of layer l - 1)

Parameters (torch's names, layout and order): per layer ``weight_ih_l{l}`` (H, I or H),
``weight_hh_l{l}`` (H, H), ``bias_ih_l{l}`` (H,), ``bias_hh_l{l}`` (H,); all ~ U(-1/√H, 1/√H).
Dropout between layers and bidirectional RNNs are not part of this concept: both are rejected.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy_impl import random
from numpy_impl.layers.activations import relu, relu_backward, tanh_backward
from numpy_impl.module import Module, Parameter

NONLINEARITIES = ("tanh", "relu")


# --- one layer, all time steps -----------------------------------------------------------------
def rnn_layer_forward(x: np.ndarray, h0: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
                      b_ih: np.ndarray | None, b_hh: np.ndarray | None, nonlinearity: str):
    """One layer over a (T, B, I) sequence: the hidden states (T, B, H) and the cache."""
    f = np.tanh if nonlinearity == "tanh" else relu
    xw = x @ w_ih.T                                    # (T, B, H) input term, all steps at once
    if b_ih is not None:
        xw = xw + b_ih
    hs = np.empty(xw.shape, dtype=xw.dtype)            # (T, B, H)
    h = h0                                             # (B, H)
    for t in range(x.shape[0]):                        # the recurrence: step by step
        a = xw[t] + h @ w_hh.T                         # (B, H) a_t = x_t W_ihᵀ + b_ih + h W_hhᵀ
        if b_hh is not None:
            a = a + b_hh                               #        ... + b_hh
        h = f(a)                                       # (B, H) h_t = f(a_t)
        hs[t] = h
    return hs, (x, h0, hs, w_ih, w_hh, b_ih is not None, nonlinearity)


def rnn_layer_backward(dhs: np.ndarray, dh_last: np.ndarray, cache):
    """Backpropagation through time for one layer: (dx, dh0, dW_ih, dW_hh, db_ih, db_hh)
    from dhs = dL/dh_t through the layer's output (T, B, H) and dh_last = dL/dh_n (B, H)."""
    x, h0, hs, w_ih, w_hh, has_bias, nonlinearity = cache
    da = np.empty_like(hs)                             # (T, B, H)
    dh_next = dh_last                                  # what reaches h_t from step t + 1
    for t in range(hs.shape[0] - 1, -1, -1):
        dh = dhs[t] + dh_next                          # (B, H) sum over h_t's two uses
        if nonlinearity == "tanh":
            da[t] = tanh_backward(dh, hs[t])           # chain rule through tanh: 1 - h_t²
        else:
            da[t] = relu_backward(dh, hs[t])           # through ReLU: 1[a_t > 0] = 1[h_t > 0]
        dh_next = da[t] @ w_hh                         # (B, H) into h_{t-1} via h_{t-1} W_hhᵀ
    dh0 = dh_next                                      # (B, H) h_{-1} = h0
    h_prev = np.concatenate([h0[None], hs[:-1]])       # (T, B, H) h_{t-1} for every t
    rows_da = da.reshape(-1, da.shape[-1])             # (T·B, H) every (t, b) is a row
    dw_ih = rows_da.T @ x.reshape(-1, x.shape[-1])     # (H, I)  Σ_t da_tᵀ x_t
    dw_hh = rows_da.T @ h_prev.reshape(-1, hs.shape[-1])  # (H, H)  Σ_t da_tᵀ h_{t-1}
    db = rows_da.sum(axis=0) if has_bias else None     # (H,)    both biases add to every a_t
    dx = da @ w_ih                                     # (T, B, I) into x_t via x_t W_ihᵀ
    return dx, dh0, dw_ih, dw_hh, db, db


# --- the module ---------------------------------------------------------------------------------
class RNN(Module):
    """``torch.nn.RNN``: forward(input, h0=None) -> (output, h_n), every layout torch accepts:
    (T, B, I), (B, T, I) with ``batch_first``, or unbatched (T, I); h0 (L, B, H) or (L, H)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__()
        check_arguments(hidden_size, num_layers, nonlinearity, dropout, bidirectional)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        bound = 1.0 / np.sqrt(hidden_size)
        for layer in range(num_layers):                # torch's order: w_ih, w_hh, b_ih, b_hh
            in_size = input_size if layer == 0 else hidden_size
            setattr(self, f"weight_ih_l{layer}",
                    Parameter(random.uniform(-bound, bound, (hidden_size, in_size))))
            setattr(self, f"weight_hh_l{layer}",
                    Parameter(random.uniform(-bound, bound, (hidden_size, hidden_size))))
            if bias:
                setattr(self, f"bias_ih_l{layer}",
                        Parameter(random.uniform(-bound, bound, (hidden_size,))))
                setattr(self, f"bias_hh_l{layer}",
                        Parameter(random.uniform(-bound, bound, (hidden_size,))))

    def _layer_parameters(self, layer: int) -> list[Parameter | None]:
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        return [getattr(self, f"{name}_l{layer}", None) for name in names]

    def forward(self, input: np.ndarray, h0: np.ndarray | None = None):
        input = np.asarray(input)
        batched = check_input(input, h0, self.input_size, self.hidden_size, self.num_layers,
                              self.batch_first)
        x = input if batched else input[:, None]       # unbatched (T, I) -> (T, 1, I)
        if batched and self.batch_first:
            x = x.swapaxes(0, 1)                       # (B, T, I) -> (T, B, I)
        batch = x.shape[1]
        if h0 is None:
            h0_all = np.zeros((self.num_layers, batch, self.hidden_size), dtype=x.dtype)
        else:
            h0_all = np.asarray(h0) if batched else np.asarray(h0)[:, None]  # (L, B, H)
        self._caches = []
        layer_input, last = x, []
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = (None if p is None else p.data
                                      for p in self._layer_parameters(layer))
            hs, cache = rnn_layer_forward(layer_input, h0_all[layer], w_ih, w_hh, b_ih, b_hh,
                                          self.nonlinearity)  # (T, B, H)
            self._caches.append(cache)
            last.append(hs[-1])
            layer_input = hs                           # the next layer reads these states
        output, h_n = layer_input, np.stack(last)      # (T, B, H), (L, B, H)
        self._layout = (batched, h0 is not None)
        if not batched:
            return output[:, 0], h_n[:, 0]             # (T, H), (L, H)
        return (output.swapaxes(0, 1) if self.batch_first else output), h_n

    def backward(self, grad_output: Any) -> Any:
        """grad_output: (dL/doutput, dL/dh_n) -- either may be None -- or dL/doutput alone.
        Returns dL/dinput, and (dL/dinput, dL/dh0) when forward was given an h0."""
        batched, h0_given = self._layout
        g_out, g_hn = grad_output if isinstance(grad_output, tuple) else (grad_output, None)
        steps, batch, hidden = self._caches[-1][2].shape
        dtype = self._caches[-1][2].dtype
        if g_out is None:
            g_out = np.zeros((steps, batch, hidden), dtype=dtype)
        elif not batched:
            g_out = np.asarray(g_out)[:, None]         # (T, H) -> (T, 1, H)
        elif self.batch_first:
            g_out = np.asarray(g_out).swapaxes(0, 1)   # (B, T, H) -> (T, B, H)
        if g_hn is None:
            g_hn = np.zeros((self.num_layers, batch, hidden), dtype=dtype)
        elif not batched:
            g_hn = np.asarray(g_hn)[:, None]           # (L, H) -> (L, 1, H)
        dhs, dh0 = g_out, []
        for layer in range(self.num_layers - 1, -1, -1):   # top layer first
            dx, dh0_layer, dw_ih, dw_hh, db_ih, db_hh = rnn_layer_backward(
                dhs, g_hn[layer], self._caches[layer])
            w_ih, w_hh, b_ih, b_hh = self._layer_parameters(layer)
            w_ih.grad += dw_ih                         # accumulate, as autograd does
            w_hh.grad += dw_hh
            if b_ih is not None:
                b_ih.grad += db_ih
                b_hh.grad += db_hh
            dh0.append(dh0_layer)
            dhs = dx                                   # layer l's input was layer l-1's output
        dinput = dhs                                   # (T, B, I)
        dh0 = np.stack(dh0[::-1])                      # (L, B, H) back in layer order
        if not batched:
            dinput, dh0 = dinput[:, 0], dh0[:, 0]
        elif self.batch_first:
            dinput = dinput.swapaxes(0, 1)
        return (dinput, dh0) if h0_given else dinput

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.nonlinearity != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        return text


# --- argument checks, shared with the torch twin's messages ---------------------------------
def check_arguments(hidden_size: int, num_layers: int, nonlinearity: str, dropout: float,
                    bidirectional: bool) -> None:
    """torch's constructor errors, plus the two features this concept leaves out."""
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
    if not isinstance(hidden_size, int) or hidden_size <= 0:
        raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
    if not isinstance(num_layers, int) or num_layers <= 0:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
    if dropout != 0:
        raise ValueError(f"dropout={dropout} is not supported by this RNN (it would need a "
                         "dropout mask shared by both twins); use dropout=0")
    if bidirectional:
        raise ValueError("bidirectional=True is not supported by this RNN; use two RNNs, one "
                         "on the reversed sequence")


def check_input(input: Any, h0: Any, input_size: int, hidden_size: int, num_layers: int,
                batch_first: bool) -> bool:
    """torch's checks on input and h0 (as RuntimeError, as torch); returns ``batched``."""
    shape, ndim = tuple(input.shape), len(input.shape)
    if ndim not in (2, 3):
        raise ValueError(f"RNN: Expected input to be 2D or 3D, got {ndim}D tensor instead")
    if shape[-1] != input_size:
        raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {input_size}, "
                           f"got {shape[-1]}")
    batched = ndim == 3
    steps = shape[1] if batched and batch_first else shape[0]
    if steps == 0:
        raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
    if h0 is not None:
        h_shape = tuple(h0.shape)
        if len(h_shape) != ndim:
            kind = "batched 3-D" if batched else "unbatched 2-D"
            raise RuntimeError(f"For {kind} input, hx should also be {ndim}-D but got "
                               f"{len(h_shape)}-D tensor")
        batch = (shape[0] if batch_first else shape[1]) if batched else None
        expected = (num_layers, batch, hidden_size) if batched else (num_layers, hidden_size)
        if h_shape != expected:
            raise RuntimeError(f"Expected hidden size {expected}, got {list(h_shape)}")
    return batched
