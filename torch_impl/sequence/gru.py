r"""Gated recurrent unit in PyTorch: the cell written out with tensor ops on the shared
``RNNBase`` (layers, directions, dropout between layers, states, layouts); autograd does
backpropagation through time.

    u_t = x_t W_ihᵀ + b_ih,   v_t = h_{t-1} W_hhᵀ + b_hh       (B, 3H) each, rows r, z, n
    r = σ(u_r + v_r),   z = σ(u_z + v_z),   n = tanh(u_n + r ⊙ v_n)      (b_hn inside r ⊙ ·)
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}

Same constructor, parameter names, shapes, order and init as ``torch.nn.GRU``, so its
state_dict loads into ``nn.GRU`` unchanged.
"""
from __future__ import annotations

import torch

from torch_impl.sequence.rnn import RNNBase


class GRU(RNNBase):
    """``torch.nn.GRU`` written out: forward(input, hx=None) -> (output, h_n)."""

    gate_count = 3
    state_count = 1
    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)

    def cell(self, x: torch.Tensor, states0: tuple, weights: dict):
        u = x @ weights["weight_ih"].T                 # (T, B, 3H) input terms, all steps
        if weights["bias_ih"] is not None:
            u = u + weights["bias_ih"]
        h, hs = states0[0], []
        for t in range(x.shape[0]):                    # the recurrence: step by step
            v = h @ weights["weight_hh"].T             # (B, 3H) hidden terms
            if weights["bias_hh"] is not None:
                v = v + weights["bias_hh"]
            u_r, u_z, u_n = u[t].chunk(3, dim=-1)      # (B, H) each, torch's order r, z, n
            v_r, v_z, v_n = v.chunk(3, dim=-1)
            r = torch.sigmoid(u_r + v_r)
            z = torch.sigmoid(u_z + v_z)
            n = torch.tanh(u_n + r * v_n)              # the reset gate scales v_n = h W_hnᵀ + b_hn
            h = (1 - z) * n + z * h                    # (B, H)
            hs.append(h)
        return torch.stack(hs), (h,)                   # (T, B, H), h_n
