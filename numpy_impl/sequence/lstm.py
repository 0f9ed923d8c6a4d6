r"""Long short-term memory (``torch.nn.LSTM``): the cell by hand, forward and backprop through
time, on the recurrence machinery of ``RNNBase`` (layers, directions, dropout between layers,
states, layouts: see ``numpy_impl.sequence.rnn``).

Forward, one layer and direction, t = 0 .. T-1; the four gates are one matrix product, in
torch's row order i, f, g, o (W_ih is (4H, I) = [W_ii; W_if; W_ig; W_io]):

    a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh            (B, 4H) = [a_i, a_f, a_g, a_o]
    i_t = σ(a_i)   f_t = σ(a_f)   g_t = tanh(a_g)   o_t = σ(a_o)        (B, H) each
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t                                     (B, H)
    m_t = o_t ⊙ tanh(c_t)                                               (B, H)
    h_t = m_t              or, with proj_size P,   h_t = m_t W_hrᵀ      (B, P)

h_{-1}, c_{-1} = h0[k], c0[k] (zeros if not given); h_n, c_n are the last h_t, c_t.

Backward through time, t = T-1 .. 0. h_t feeds the output and step t+1, c_t feeds c_{t+1}
and h_t, so each carries the sum of two gradients:

    dh_t  = G_t + da_{t+1} W_hh                   (dh_T-side term := dL/dh_n)
    dW_hr += dh_tᵀ m_t,   dm_t = dh_t W_hr        (without projection dm_t = dh_t)
    do_t  = dm_t ⊙ tanh(c_t)
    dc_t  = dc_{t+1} ⊙ f_{t+1} + dm_t ⊙ o_t ⊙ (1 - tanh²(c_t))      (dc_T-side term := dL/dc_n)
    di_t  = dc_t ⊙ g_t    dg_t = dc_t ⊙ i_t    df_t = dc_t ⊙ c_{t-1}
    da_t  = [di ⊙ i(1-i), df ⊙ f(1-f), dg ⊙ (1-g²), do ⊙ o(1-o)]    (B, 4H)
    dL/dh0 = da_0 W_hh,   dL/dc0 = dc_0 ⊙ f_0

and over all T·B rows at once: dW_ih = Σ da_tᵀ x_t, dW_hh = Σ da_tᵀ h_{t-1},
db_ih = db_hh = Σ da_t, dx_t = da_t W_ih.

Parameters: torch's names, shapes and order, per layer and direction: ``weight_ih_l{l}``
(4H, I), ``weight_hh_l{l}`` (4H, P or H), ``bias_ih_l{l}``, ``bias_hh_l{l}`` (4H,),
``weight_hr_l{l}`` (P, H) with ``proj_size``; suffix ``_reverse``; all ~ U(-1/√H, 1/√H).

Speed without changing the formulas: the input term x_t W_ihᵀ + b_ih + b_hh of every step
is one matrix product before the loop; each step writes a_t, the gates, c_t, tanh(c_t) and m_t
into preallocated (T, ·) arrays in place (a step at B = 32, H = 128 is dominated by the number
of array operations, not their size); backward computes the local slopes σ' = y (1 - y),
tanh' = 1 - g² and o ⊙ (1 - tanh²(c)) for all steps at once before the loop, and the weight
gradients as single products over all T·B rows after it.

``CharLSTM`` is a character-level next-character model on top: embedding -> LSTM -> linear
head, trained with cross-entropy (``train_step``).
"""
from __future__ import annotations

import numpy as np

from numpy_impl.layers.activations import sigmoid
from numpy_impl.layers.embedding import Embedding
from numpy_impl.layers.linear import Linear
from numpy_impl.layers.losses import CrossEntropyLoss
from numpy_impl.module import Module
from numpy_impl.sequence.rnn import RNNBase


# --- the cell: one layer, one direction, all time steps --------------------------------------
def lstm_layer_forward(x: np.ndarray, h0: np.ndarray, c0: np.ndarray, weights: dict):
    """One layer over a (T, B, I) sequence: hs (T, B, P or H), (h_n, c_n) and the cache."""
    w_ih, w_hh, b_ih, b_hh, w_hr = (weights[n] for n in
                                    ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr"))
    steps, hidden = x.shape[0], w_hh.shape[0] // 4
    xw = x @ w_ih.T                                    # (T, B, 4H) input term, all steps at once
    if b_ih is not None:
        xw += b_ih                                     # both biases join the input term once,
        xw += b_hh                                     # not once per step
    w_hh_t = w_hh.T                                    # (P or H, 4H)
    gates = np.empty(xw.shape, dtype=xw.dtype)         # (T, B, 4H) a_t, then i, f, g, o in place
    cs = np.empty(xw.shape[:2] + (hidden,), dtype=xw.dtype)   # (T, B, H)
    tanh_cs = np.empty_like(cs)                        # (T, B, H)
    ms = np.empty_like(cs)                             # (T, B, H)   o ⊙ tanh(c)
    hs = np.empty(xw.shape[:2] + (h0.shape[-1],), dtype=xw.dtype)   # (T, B, P or H)
    h, c = h0, c0
    for t in range(steps):                             # the recurrence: step by step
        a = np.matmul(h, w_hh_t, out=gates[t])         # (B, 4H) h_{t-1} W_hhᵀ
        a += xw[t]                                     # (B, 4H) a_t
        i, f = a[:, :hidden], a[:, hidden:2 * hidden]  # (B, H) views, overwritten in place
        g, o = a[:, 2 * hidden:3 * hidden], a[:, 3 * hidden:]
        sigmoid(a[:, :2 * hidden], out=a[:, :2 * hidden])   # i, f = σ
        np.tanh(g, out=g)                              # g = tanh
        sigmoid(o, out=o)                              # o = σ
        c = np.multiply(f, c, out=cs[t])               # (B, H) c_t = f ⊙ c_{t-1} ...
        c += np.multiply(i, g, out=ms[t])              #            ... + i ⊙ g  (ms[t]: scratch)
        np.tanh(c, out=tanh_cs[t])
        np.multiply(o, tanh_cs[t], out=ms[t])          # (B, H) m_t = o ⊙ tanh(c_t)
        if w_hr is None:
            hs[t] = ms[t]                              # (B, H) h_t = m_t
        else:
            np.matmul(ms[t], w_hr.T, out=hs[t])        # (B, P) h_t = m_t W_hrᵀ
        h = hs[t]
    cache = (x, h0, c0, gates, cs, tanh_cs, ms, hs, weights)
    return hs, (hs[-1], cs[-1]), cache


def lstm_layer_backward(dhs: np.ndarray, dh_last: np.ndarray, dc_last: np.ndarray, cache):
    """Backpropagation through time for one layer: (dx, dh0, dc0, grads) from dhs = dL/dh_t
    through the layer's output (T, B, P or H), dL/dh_n and dL/dc_n (B, ·)."""
    x, h0, c0, gates, cs, tanh_cs, ms, hs, weights = cache
    w_ih, w_hh, w_hr = weights["weight_ih"], weights["weight_hh"], weights["weight_hr"]
    steps, hidden = x.shape[0], cs.shape[-1]
    # local slopes that need no upstream gradient, for all steps at once (few large array ops
    # instead of many small ones in the loop): σ' = y (1 - y) for i, f, o; tanh' = 1 - g² for
    # g; and dm_t/dc_t = o ⊙ (1 - tanh²(c_t)) through m = o ⊙ tanh(c)
    slopes = np.subtract(1.0, gates)                   # (T, B, 4H) 1 - y
    slopes *= gates                                    # y (1 - y)
    g_all, slope_g = gates[..., 2 * hidden:3 * hidden], slopes[..., 2 * hidden:3 * hidden]
    np.multiply(g_all, g_all, out=slope_g)
    np.subtract(1.0, slope_g, out=slope_g)             # (T, B, H) 1 - g²
    m_over_c = np.multiply(tanh_cs, tanh_cs)           # (T, B, H) tanh²(c)
    np.subtract(1.0, m_over_c, out=m_over_c)
    m_over_c *= gates[..., 3 * hidden:]                # (T, B, H) o ⊙ (1 - tanh²(c))
    da = np.empty_like(gates)                          # (T, B, 4H) dL/da_t
    dh_all = np.empty_like(hs)                         # (T, B, P) total dL/dh_t, for dW_hr
    dc_from_m = np.empty_like(cs[0])                   # (B, H) scratch
    s_i, s_f, s_g, s_o = (slice(k * hidden, (k + 1) * hidden) for k in range(4))   # gate columns
    dh_next, dc = dh_last, dc_last                     # what reaches h_t, c_t from step t + 1
    for t in range(steps - 1, -1, -1):
        dh = np.add(dhs[t], dh_next, out=dh_all[t])    # (B, P) h_t's two uses
        dm = dh if w_hr is None else dh @ w_hr         # (B, H) through h_t = m_t W_hrᵀ
        i, f, g = gates[t, :, s_i], gates[t, :, s_f], gates[t, :, s_g]   # (B, H) each
        di, df, dg, do = da[t, :, s_i], da[t, :, s_f], da[t, :, s_g], da[t, :, s_o]  # views
        c_prev = cs[t - 1] if t > 0 else c0            # (B, H)
        np.multiply(dm, tanh_cs[t], out=do)            # through m = o ⊙ tanh(c), into o
        np.multiply(dm, m_over_c[t], out=dc_from_m)    # ... and into c
        dc = dc + dc_from_m                            # (B, H) plus c_{t+1}'s share
        np.multiply(dc, g, out=di)                     # c = ... + i ⊙ g, into i
        np.multiply(dc, c_prev, out=df)                # c = f ⊙ c_{t-1} + ..., into f
        np.multiply(dc, i, out=dg)                     # c = ... + i ⊙ g, into g
        da[t] *= slopes[t]                             # through i, f, o = σ(·), g = tanh(·)
        dh_next = da[t] @ w_hh                         # (B, P) into h_{t-1} via h_{t-1} W_hhᵀ
        dc *= f                                        # (B, H) into c_{t-1} via f ⊙ c_{t-1}
    h_prev = np.concatenate([h0[None], hs[:-1]])       # (T, B, P) h_{t-1} for every t
    rows_da = da.reshape(-1, da.shape[-1])             # (T·B, 4H) every (t, b) is a row
    grads = {
        "weight_ih": rows_da.T @ x.reshape(-1, x.shape[-1]),           # (4H, I)  Σ da_tᵀ x_t
        "weight_hh": rows_da.T @ h_prev.reshape(-1, hs.shape[-1]),     # (4H, P)  Σ da_tᵀ h_{t-1}
        "bias_ih": rows_da.sum(axis=0) if weights["bias_ih"] is not None else None,   # (4H,)
        "weight_hr": None,
    }
    grads["bias_hh"] = grads["bias_ih"]                # both biases add to every a_t
    if w_hr is not None:                               # (P, H)  Σ dh_tᵀ m_t
        grads["weight_hr"] = dh_all.reshape(-1, hs.shape[-1]).T @ ms.reshape(-1, hidden)
    dx = da @ w_ih                                     # (T, B, I) into x_t via x_t W_ihᵀ
    return dx, dh_next, dc, grads


# --- the module ---------------------------------------------------------------------------------
class LSTM(RNNBase):
    """``torch.nn.LSTM``: forward(input, hx=None) -> (output, (h_n, c_n)), hx = (h_0, c_0);
    backward((dL/doutput, (dL/dh_n, dL/dc_n))) -> dL/dinput, or (dL/dinput, (dL/dh_0,
    dL/dc_0)) when hx was given. ``forward(..., dropout_mask=m)`` replays dropout masks."""

    gate_count = 4
    state_count = 2
    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size)

    def cell_forward(self, x: np.ndarray, states0: tuple, weights: dict):
        return lstm_layer_forward(x, states0[0], states0[1], weights)

    def cell_backward(self, dhs: np.ndarray, dlast: tuple, cache):
        dx, dh0, dc0, grads = lstm_layer_backward(dhs, dlast[0], dlast[1], cache)
        return dx, (dh0, dc0), grads


# --- a character-level next-character model -------------------------------------------------
class CharLSTM(Module):
    """Embedding -> LSTM (batch_first) -> Linear: logits for the next character at every step.

    forward(idx (B, T) int, targets (B, T) int or None) -> logits (B, T, V), or the mean
    cross-entropy over all B·T positions when targets are given."""

    def __init__(self, vocab_size: int = 27, n_embd: int = 16, hidden_size: int = 32,
                 num_layers: int = 1) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = Embedding(vocab_size, n_embd)
        self.lstm = LSTM(n_embd, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = Linear(hidden_size, vocab_size)
        self.loss_fn = CrossEntropyLoss()

    def forward(self, idx: np.ndarray, targets: np.ndarray | None = None):
        emb = self.embedding(idx)                      # (B, T, E)
        hs, _ = self.lstm(emb)                         # (B, T, H)
        logits = self.head(hs)                         # (B, T, V)
        self._with_loss, self._logits_shape = targets is not None, logits.shape
        if targets is None:
            return logits
        return self.loss_fn(logits.reshape(-1, self.vocab_size), np.asarray(targets).reshape(-1))

    def backward(self, grad_output: np.ndarray) -> None:
        if self._with_loss:                            # dL/dlogits from the loss's gradient
            grad_output = self.loss_fn.backward(grad_output).reshape(self._logits_shape)
        dhs = self.head.backward(grad_output)          # (B, T, H)
        demb = self.lstm.backward((dhs, None))         # (B, T, E) through time
        self.embedding.backward(demb)
        return None                                    # integer inputs: no gradient


def train_step(model: CharLSTM, optimizer, idx: np.ndarray, targets: np.ndarray) -> float:
    """One step: zero the gradients, the loss, its backward (dL/dL = 1), the update."""
    optimizer.zero_grad()
    loss = model(idx, targets)
    model.backward(np.ones_like(loss))
    optimizer.step()
    return float(loss)
