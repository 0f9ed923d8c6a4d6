r"""Gated recurrent unit (``torch.nn.GRU``): the cell by hand, forward and backprop through
time, on the recurrence machinery of ``RNNBase`` (layers, directions, dropout between layers,
states, layouts: see ``numpy_impl.sequence.rnn``).

Forward, one layer and direction, t = 0 .. T-1; torch's gate row order r, z, n (W_ih is
(3H, I) = [W_ir; W_iz; W_in]). The input and the hidden terms stay apart, because the reset
gate multiplies the hidden term of the candidate *including its bias b_hn*:

    u_t = x_t W_ihᵀ + b_ih                     (B, 3H) = [u_r, u_z, u_n]
    v_t = h_{t-1} W_hhᵀ + b_hh                 (B, 3H) = [v_r, v_z, v_n]
    r_t = σ(u_r + v_r)       z_t = σ(u_z + v_z)                  (B, H)
    n_t = tanh(u_n + r_t ⊙ v_n)                                  (B, H)   v_n holds b_hn
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}                        (B, H)

Backward through time, t = T-1 .. 0, dh_t = G_t + (what h_t sent into step t+1):

    dn = dh ⊙ (1 - z)        dz = dh ⊙ (h_{t-1} - n)        (h_{t-1} directly: dh ⊙ z)
    da_n = dn ⊙ (1 - n²)                              through tanh
    dr = da_n ⊙ v_n          dv_n = da_n ⊙ r          through r ⊙ v_n
    da_r = dr ⊙ r(1 - r)     da_z = dz ⊙ z(1 - z)     through σ
    du = [da_r, da_z, da_n]     dv = [da_r, da_z, dv_n]                  (B, 3H)
    dh_{t-1} = dh ⊙ z + dv W_hh

and over all T·B rows: dW_ih = Σ du_tᵀ x_t, db_ih = Σ du_t, dW_hh = Σ dv_tᵀ h_{t-1},
db_hh = Σ dv_t, dx_t = du_t W_ih; dL/dh0 is the last dh_{t-1}.

Parameters: torch's names, shapes and order, per layer and direction: ``weight_ih_l{l}``
(3H, I), ``weight_hh_l{l}`` (3H, H), ``bias_ih_l{l}``, ``bias_hh_l{l}`` (3H,); suffix
``_reverse``; all ~ U(-1/√H, 1/√H).
"""
from __future__ import annotations

import numpy as np

from numpy_impl.layers.activations import sigmoid, sigmoid_backward, tanh_backward
from numpy_impl.sequence.rnn import RNNBase


# --- the cell: one layer, one direction, all time steps --------------------------------------
def gru_layer_forward(x: np.ndarray, h0: np.ndarray, weights: dict):
    """One layer over a (T, B, I) sequence: hs (T, B, H), h_n and the cache."""
    w_ih, w_hh, b_ih, b_hh = (weights[n] for n in ("weight_ih", "weight_hh", "bias_ih",
                                                   "bias_hh"))
    steps, hidden = x.shape[0], w_hh.shape[1]
    u = x @ w_ih.T                                     # (T, B, 3H) input terms, all steps
    if b_ih is not None:
        u = u + b_ih
    rz = np.empty(u.shape[:2] + (2 * hidden,), dtype=u.dtype)   # (T, B, 2H) r, z
    ns = np.empty(u.shape[:2] + (hidden,), dtype=u.dtype)       # (T, B, H)  n
    v_ns = np.empty_like(ns)                           # (T, B, H)  v_n = h W_hnᵀ + b_hn
    hs = np.empty_like(ns)                             # (T, B, H)
    h = h0
    for t in range(steps):                             # the recurrence: step by step
        v = h @ w_hh.T                                 # (B, 3H) hidden terms v_t
        if b_hh is not None:
            v = v + b_hh
        rz[t] = sigmoid(u[t, :, :2 * hidden] + v[:, :2 * hidden])   # r, z = σ(u + v)
        r, z = rz[t, :, :hidden], rz[t, :, hidden:]
        v_ns[t] = v[:, 2 * hidden:]
        ns[t] = np.tanh(u[t, :, 2 * hidden:] + r * v_ns[t])         # n = tanh(u_n + r ⊙ v_n)
        h = (1.0 - z) * ns[t] + z * h                  # (B, H) h_t
        hs[t] = h
    return hs, (hs[-1],), (x, h0, rz, ns, v_ns, hs, weights)


def gru_layer_backward(dhs: np.ndarray, dh_last: np.ndarray, cache):
    """Backpropagation through time for one layer: (dx, dh0, grads) from dhs = dL/dh_t
    through the layer's output (T, B, H) and dh_last = dL/dh_n (B, H)."""
    x, h0, rz, ns, v_ns, hs, weights = cache
    w_ih, w_hh = weights["weight_ih"], weights["weight_hh"]
    steps, hidden = x.shape[0], hs.shape[-1]
    du = np.empty(hs.shape[:2] + (3 * hidden,), dtype=hs.dtype)   # (T, B, 3H) dL/du_t
    dv = np.empty_like(du)                                        # (T, B, 3H) dL/dv_t
    dh_next = dh_last                                  # what reaches h_t from step t + 1
    for t in range(steps - 1, -1, -1):
        dh = dhs[t] + dh_next                          # (B, H) h_t's two uses
        r, z, n = rz[t, :, :hidden], rz[t, :, hidden:], ns[t]
        h_prev = hs[t - 1] if t > 0 else h0            # (B, H)
        da_n = tanh_backward(dh * (1.0 - z), n)        # h = (1 - z) n + ...; n = tanh(a_n)
        da_r = sigmoid_backward(da_n * v_ns[t], r)     # a_n = u_n + r ⊙ v_n;  r = σ(a_r)
        da_z = sigmoid_backward(dh * (h_prev - n), z)  # h = n + z (h_{t-1} - n);  z = σ(a_z)
        du[t, :, :hidden], du[t, :, hidden:2 * hidden], du[t, :, 2 * hidden:] = da_r, da_z, da_n
        dv[t, :, :hidden], dv[t, :, hidden:2 * hidden] = da_r, da_z
        dv[t, :, 2 * hidden:] = da_n * r               # v_n is scaled by r
        dh_next = dh * z + dv[t] @ w_hh                # (B, H) into h_{t-1}: z ⊙ h_{t-1}, v_t
    h_prev = np.concatenate([h0[None], hs[:-1]])       # (T, B, H) h_{t-1} for every t
    rows_du = du.reshape(-1, du.shape[-1])             # (T·B, 3H)
    rows_dv = dv.reshape(-1, dv.shape[-1])             # (T·B, 3H)
    has_bias = weights["bias_ih"] is not None
    grads = {
        "weight_ih": rows_du.T @ x.reshape(-1, x.shape[-1]),        # (3H, I)  Σ du_tᵀ x_t
        "weight_hh": rows_dv.T @ h_prev.reshape(-1, hidden),        # (3H, H)  Σ dv_tᵀ h_{t-1}
        "bias_ih": rows_du.sum(axis=0) if has_bias else None,       # (3H,)
        "bias_hh": rows_dv.sum(axis=0) if has_bias else None,       # (3H,)   differs from b_ih
        "weight_hr": None,                                          #          in its n part
    }
    dx = du @ w_ih                                     # (T, B, I) into x_t via x_t W_ihᵀ
    return dx, dh_next, grads


# --- the module ---------------------------------------------------------------------------------
class GRU(RNNBase):
    """``torch.nn.GRU``: forward(input, hx=None) -> (output, h_n); backward((dL/doutput,
    dL/dh_n)) -> dL/dinput, or (dL/dinput, dL/dh_0) when hx was given.
    ``forward(..., dropout_mask=m)`` replays dropout masks between layers."""

    gate_count = 3
    state_count = 1
    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)

    def cell_forward(self, x: np.ndarray, states0: tuple, weights: dict):
        return gru_layer_forward(x, states0[0], weights)

    def cell_backward(self, dhs: np.ndarray, dlast: tuple, cache):
        dx, dh0, grads = gru_layer_backward(dhs, dlast[0], cache)
        return dx, (dh0,), grads
