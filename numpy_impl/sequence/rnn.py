r"""The Elman recurrent network (``torch.nn.RNN``): forward and backprop through time by hand,
and ``RNNBase``, the recurrence machinery that ``RNN``, ``LSTM`` and ``GRU`` share.

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

What every recurrent layer shares (``RNNBase``, as in torch) is everything around the cell:

- **Directions.** With ``bidirectional=True`` each layer runs a second, independent cell over
  the reversed sequence (parameters ``..._reverse``); the reverse run's states are flipped back
  so that step t of the output holds [forward h_t, reverse h_t]: (T, B, 2H). Its backward is the
  same cell's backward on the flipped gradient; the input gradient is the sum of both runs'.
- **Layers.** Layer l > 0 reads layer l - 1's output, so in backward the input gradient of
  layer l is the output gradient G of layer l - 1.
- **Dropout between layers** (training only, every layer but the last): y = x ⊙ m / (1 - p)
  with a keep-mask m; backward multiplies by the same m / (1 - p). ``forward(..., dropout_mask)``
  replays a given mask (L - 1 masks, each shaped like ``output``) so both twins drop the same
  units; without one, the layer draws its own.
- **States.** h0 (and the LSTM's c0) are (L·D, B, H) with index l·D + direction, as torch;
  zeros when not given. h_n stacks the last state of every layer and direction the same way.
- **Layouts.** (T, B, I), (B, T, I) with ``batch_first``, or unbatched (T, I) with (L·D, H)
  states; everything inside runs time-major (T, B, ·).

Parameters (torch's names, layout and order): per layer and direction ``weight_ih_l{l}``
(G·H, I or D·H), ``weight_hh_l{l}`` (G·H, H), ``bias_ih_l{l}`` (G·H,), ``bias_hh_l{l}`` (G·H,),
suffix ``_reverse`` for the reverse direction; G = 1 here (4 for the LSTM, 3 for the GRU); all
~ U(-1/√H, 1/√H).
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from numpy_impl import random
from numpy_impl.layers.activations import relu, relu_backward, tanh_backward
from numpy_impl.layers.dropout import dropout_backward, dropout_forward
from numpy_impl.module import Module, Parameter

NONLINEARITIES = ("tanh", "relu")
WEIGHT_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")


# --- the Elman cell: one layer, one direction, all time steps --------------------------------
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


# --- what RNN, LSTM and GRU share ------------------------------------------------------------
class RNNBase(Module):
    """``torch.nn.RNNBase``: parameters per layer and direction, layouts, states, dropout
    between layers, and the loops over layers and directions in forward and backward.

    A subclass supplies its cell through three members:
    ``gate_count`` (G: the parameter rows are G·H), ``state_count`` (1, or 2 for (h, c)),
    ``cell_forward(x, states0, weights) -> (hs, last_states, cache)`` over one (T, B, I)
    sequence, and ``cell_backward(dhs, dlast_states, cache) -> (dx, dstates0, grads)`` with
    ``weights`` / ``grads`` dicts keyed by ``WEIGHT_NAMES`` (None where a weight is absent).
    """

    gate_count = 1
    state_count = 1
    mode = "RNN"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0) -> None:
        super().__init__()
        check_arguments(self.mode, hidden_size, num_layers, dropout, proj_size)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        directions = 2 if bidirectional else 1
        out_size = proj_size or hidden_size            # the size of h (the LSTM projects it)
        rows = self.gate_count * hidden_size
        bound = 1.0 / np.sqrt(hidden_size)
        for layer in range(num_layers):                # torch's order: layer, direction, then
            in_size = input_size if layer == 0 else out_size * directions   # w_ih .. w_hr
            for suffix in ("", "_reverse")[:directions]:
                shapes = {"weight_ih": (rows, in_size), "weight_hh": (rows, out_size)}
                if bias:
                    shapes |= {"bias_ih": (rows,), "bias_hh": (rows,)}
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                for name, shape in shapes.items():
                    setattr(self, f"{name}_l{layer}{suffix}",
                            Parameter(random.uniform(-bound, bound, shape)))

    # --- sizes and parameters ----------------------------------------------------------------
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def state_sizes(self) -> tuple[int, ...]:
        """The last dimension of each state: h (H, or proj_size), and c (H) for the LSTM."""
        return (self.proj_size or self.hidden_size, self.hidden_size)[:self.state_count]

    def _parameters_of(self, layer: int, direction: int) -> dict[str, Parameter | None]:
        suffix = "_reverse" if direction else ""
        return {name: getattr(self, f"{name}_l{layer}{suffix}", None) for name in WEIGHT_NAMES}

    # --- forward ------------------------------------------------------------------------------
    def forward(self, input: np.ndarray, hx: Any = None, dropout_mask: np.ndarray | None = None):
        """output, and h_n (RNN, GRU) or (h_n, c_n) (LSTM), in torch's layouts."""
        input = np.asarray(input)
        states_given = None if hx is None else self._as_states(hx)
        batched = check_input(self.mode, input, states_given, self.input_size,
                              self.num_layers * self.num_directions, self.state_sizes(),
                              self.batch_first)
        x = input if batched else input[:, None]       # unbatched (T, I) -> (T, 1, I)
        if batched and self.batch_first:
            x = x.swapaxes(0, 1)                       # (B, T, I) -> (T, B, I)
        steps, batch = x.shape[:2]
        if states_given is None:
            states0 = tuple(np.zeros((self.num_layers * self.num_directions, batch, size),
                                     dtype=x.dtype) for size in self.state_sizes())
        else:                                          # (L·D, B, ·); unbatched (L·D, ·) gets B = 1
            states0 = tuple(s if batched else s[:, None] for s in states_given)
        masks = self._time_major_masks(dropout_mask, batched, steps, batch)
        self._caches, self._drop_caches = [], []
        finals: list[list[np.ndarray]] = [[] for _ in states0]
        layer_input = x                                # (T, B, I)
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                weights = {n: None if p is None else p.data
                           for n, p in self._parameters_of(layer, direction).items()}
                sequence = layer_input[::-1] if direction else layer_input  # reverse: t = T-1 first
                hs, last, cache = self.cell_forward(sequence, tuple(s[k] for s in states0),
                                                    weights)   # (T, B, H)
                outputs.append(hs[::-1] if direction else hs)   # back in time order
                self._caches.append(cache)
                for final, state in zip(finals, last, strict=True):
                    final.append(state)
            layer_output = np.concatenate(outputs, axis=-1)     # (T, B, D·H) [forward, reverse]
            if masks is not None and layer < self.num_layers - 1:
                layer_output, drop_cache = dropout_forward(layer_output, masks[layer],
                                                           self.dropout)
                self._drop_caches.append(drop_cache)
            layer_input = layer_output                 # the next layer reads these
        output = layer_input                           # (T, B, D·H)
        states_n = tuple(np.stack(final) for final in finals)   # (L·D, B, ·) each
        self._layout = (batched, states_given is not None, output.shape, output.dtype)
        if not batched:
            output, states_n = output[:, 0], tuple(s[:, 0] for s in states_n)
        elif self.batch_first:
            output = output.swapaxes(0, 1)             # (T, B, ·) -> (B, T, ·)
        return output, self._from_states(states_n)

    def _as_states(self, hx: Any) -> tuple[np.ndarray, ...]:
        """hx as a tuple of arrays: (h0,) or (h0, c0)."""
        if self.state_count == 1:
            return (np.asarray(hx),)
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"{self.mode}: hx must be a tuple (h_0, c_0), got "
                            f"{type(hx).__name__}")
        return tuple(np.asarray(s) for s in hx)

    def _from_states(self, states: tuple) -> Any:
        return states[0] if self.state_count == 1 else tuple(states)

    def _time_major_masks(self, dropout_mask: np.ndarray | None, batched: bool, steps: int,
                          batch: int) -> np.ndarray | None:
        """The keep-masks (L-1, T, B, D·H) to apply between layers, or None when no dropout
        happens (eval, p = 0, or one layer). A given mask is shaped like ``output``, stacked."""
        if not (self.training and self.dropout > 0 and self.num_layers > 1):
            return None
        width = self.num_directions * self.state_sizes()[0]
        if dropout_mask is None:                       # draw our own: P(keep) = 1 - p
            shape = (self.num_layers - 1, steps, batch, width)
            return random.generator().random(shape) < 1.0 - self.dropout
        mask = np.asarray(dropout_mask, dtype=bool)
        expected = ((self.num_layers - 1, batch, steps, width) if batched and self.batch_first
                    else (self.num_layers - 1, steps, batch, width) if batched
                    else (self.num_layers - 1, steps, width))
        if mask.shape != expected:
            raise ValueError(f"dropout_mask must have shape {expected} (num_layers - 1 masks "
                             f"shaped like the output), got {mask.shape}")
        if not batched:
            return mask[:, :, None]                    # (L-1, T, ·) -> (L-1, T, 1, ·)
        return mask.swapaxes(1, 2) if self.batch_first else mask

    # --- backward -----------------------------------------------------------------------------
    def backward(self, grad_output: Any) -> Any:
        """grad_output: (dL/doutput, dL/dh_n) -- for the LSTM (dL/doutput, (dL/dh_n,
        dL/dc_n)) -- any of them may be None, or dL/doutput alone. Returns dL/dinput, and
        (dL/dinput, dL/dh0) -- (dL/dinput, (dL/dh0, dL/dc0)) -- when forward was given hx."""
        batched, states_given, (steps, batch, width), dtype = self._layout
        g_out, g_states = grad_output if isinstance(grad_output, tuple) else (grad_output, None)
        g_out = self._time_major(g_out, (steps, batch, width), batched, dtype, sequence=True)
        if g_states is None or self.state_count == 1:
            g_states = (g_states,) * self.state_count
        count = self.num_layers * self.num_directions
        g_states = tuple(self._time_major(g, (count, batch, size), batched, dtype)
                         for g, size in zip(g_states, self.state_sizes(), strict=True))
        dstates0: list[tuple] = [()] * count
        d_layer = g_out                                # (T, B, D·H) dL/d this layer's output
        for layer in range(self.num_layers - 1, -1, -1):   # top layer first
            if layer < self.num_layers - 1 and self._drop_caches:
                d_layer = dropout_backward(d_layer, self._drop_caches[layer])  # same mask
            size = self.state_sizes()[0]
            d_input = None
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                dhs = d_layer[..., direction * size:(direction + 1) * size]   # (T, B, H)
                dx, dstate0, grads = self.cell_backward(
                    dhs[::-1] if direction else dhs, tuple(g[k] for g in g_states),
                    self._caches[k])
                dx = dx[::-1] if direction else dx     # the reverse run saw the flipped input
                d_input = dx if d_input is None else d_input + dx   # both runs read the input
                for name, param in self._parameters_of(layer, direction).items():
                    if param is not None:
                        param.grad += grads[name]      # accumulate, as autograd does
                dstates0[k] = dstate0
            d_layer = d_input                          # layer l's input is layer l-1's output
        dinput = d_layer                               # (T, B, I)
        dstates = tuple(np.stack([d[i] for d in dstates0]) for i in range(self.state_count))
        if not batched:
            dinput, dstates = dinput[:, 0], tuple(d[:, 0] for d in dstates)
        elif self.batch_first:
            dinput = dinput.swapaxes(0, 1)
        return (dinput, self._from_states(dstates)) if states_given else dinput

    def _time_major(self, grad: Any, shape: tuple[int, ...], batched: bool, dtype: Any,
                    sequence: bool = False) -> np.ndarray:
        """An upstream gradient in the internal (·, B, ·) layout; zeros for None."""
        if grad is None:
            return np.zeros(shape, dtype=dtype)
        grad = np.asarray(grad)
        if not batched:
            return grad[:, None]                       # (T or L·D, ·) -> (·, 1, ·)
        return grad.swapaxes(0, 1) if sequence and self.batch_first else grad

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.proj_size:
            text += f", proj_size={self.proj_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity!r}"
        if not self.bias:
            text += ", bias=False"
        if self.batch_first:
            text += ", batch_first=True"
        if self.dropout:
            text += f", dropout={self.dropout}"
        if self.bidirectional:
            text += ", bidirectional=True"
        return text


# --- the module ---------------------------------------------------------------------------------
class RNN(RNNBase):
    """``torch.nn.RNN``: forward(input, hx=None) -> (output, h_n), every layout torch accepts:
    (T, B, I), (B, T, I) with ``batch_first``, or unbatched (T, I); hx (L·D, B, H) or (L·D, H)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)
        self.nonlinearity = nonlinearity

    def cell_forward(self, x: np.ndarray, states0: tuple, weights: dict):
        hs, cache = rnn_layer_forward(x, states0[0], weights["weight_ih"], weights["weight_hh"],
                                      weights["bias_ih"], weights["bias_hh"], self.nonlinearity)
        return hs, (hs[-1],), cache

    def cell_backward(self, dhs: np.ndarray, dlast: tuple, cache):
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = rnn_layer_backward(dhs, dlast[0], cache)
        return dx, (dh0,), {"weight_ih": dw_ih, "weight_hh": dw_hh, "bias_ih": db_ih,
                            "bias_hh": db_hh}


# --- argument checks, with torch's words -------------------------------------------------------
def check_arguments(mode: str, hidden_size: int, num_layers: int, dropout: float,
                    proj_size: int = 0) -> None:
    """torch's constructor errors (and its warning for dropout with one layer)."""
    if not isinstance(hidden_size, int) or hidden_size <= 0:
        raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
    if not isinstance(num_layers, int) or num_layers <= 0:
        raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
    if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or \
            not 0 <= dropout <= 1:
        raise ValueError("dropout should be a number in range [0, 1] representing the "
                         "probability of an element being zeroed")
    if dropout > 0 and num_layers == 1:
        warnings.warn("dropout option adds dropout after all but last recurrent layer, so "
                      "non-zero dropout expects num_layers greater than 1, but got "
                      f"dropout={dropout} and num_layers={num_layers}", stacklevel=3)
    if proj_size < 0:
        raise ValueError("proj_size should be a positive integer or zero to disable projections")
    if proj_size and mode != "LSTM":
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if proj_size >= hidden_size:
        raise ValueError("proj_size has to be smaller than hidden_size")


def check_input(mode: str, input: Any, states: tuple | None, input_size: int, count: int,
                sizes: tuple[int, ...], batch_first: bool) -> bool:
    """torch's checks on input and the initial states (as RuntimeError, as torch); returns
    ``batched``. ``count`` = num_layers · num_directions; ``sizes`` the states' last dims."""
    shape, ndim = tuple(input.shape), len(input.shape)
    if ndim not in (2, 3):
        raise ValueError(f"{mode}: Expected input to be 2D or 3D, got {ndim}D tensor instead")
    if shape[-1] != input_size:
        raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected {input_size}, "
                           f"got {shape[-1]}")
    batched = ndim == 3
    steps = shape[1] if batched and batch_first else shape[0]
    if steps == 0:
        raise RuntimeError(f"Expected sequence length to be larger than 0 in {mode}")
    if states is None:
        return batched
    kind = "batched 3-D" if batched else "unbatched 2-D"
    dims = [len(s.shape) for s in states]
    if any(d != ndim for d in dims):
        if len(states) == 1:
            raise RuntimeError(f"For {kind} input, hx should also be {ndim}-D but got "
                               f"{dims[0]}-D tensor")
        raise RuntimeError(f"For {kind} input, hx and cx should also be {ndim}-D but got "
                           f"({dims[0]}-D, {dims[1]}-D) tensors")
    batch = (shape[0] if batch_first else shape[1]) if batched else None
    for i, (state, size) in enumerate(zip(states, sizes, strict=True)):
        expected = (count, batch, size) if batched else (count, size)
        if tuple(state.shape) != expected:
            which = "hidden" if len(states) == 1 else f"hidden[{i}]"
            raise RuntimeError(f"Expected {which} size {expected}, got {list(state.shape)}")
    return batched
