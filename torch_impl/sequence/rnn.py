r"""The Elman recurrent network in PyTorch, and ``RNNBase``, the machinery that ``RNN``,
``LSTM`` and ``GRU`` share: the recurrence written out with tensor ops, autograd does
backpropagation through time.

    a_t^l = x_t^l W_ih^lᵀ + b_ih^l + h_{t-1}^l W_hh^lᵀ + b_hh^l,    h_t^l = f(a_t^l)  (tanh or ReLU)
    output = h_t^{L-1} for every t;   h_n = h_{T-1}^l for every layer l

Around the cell (``RNNBase``): a second cell per layer over the reversed sequence with
``bidirectional`` (output [forward, reverse] per step), layer l > 0 reading layer l - 1's output,
dropout between layers (a given ``dropout_mask`` is replayed, else drawn), states (L·D, B, H)
indexed l·D + direction, and the (T, B, I) / batch_first / unbatched layouts.

Same constructor, parameter names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``, ``..._reverse``, per layer), layouts and init (U(-1/√H, 1/√H)) as
``torch.nn.RNN``, so its state_dict loads into ``nn.RNN`` unchanged. The argument and shape
checks are the NumPy twin's functions (the same words as torch's).
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from numpy_impl.sequence.rnn import NONLINEARITIES, WEIGHT_NAMES, check_arguments, check_input


class RNNBase(nn.Module):
    """``torch.nn.RNNBase`` written out. A subclass sets ``gate_count``, ``state_count``,
    ``mode`` and ``cell(x, states0, weights) -> (hs, last_states)`` over one (T, B, I)
    sequence, ``weights`` a dict keyed by ``WEIGHT_NAMES`` (None where absent)."""

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
        out_size = proj_size or hidden_size
        rows = self.gate_count * hidden_size
        for layer in range(num_layers):                # torch's order: layer, direction, then
            in_size = input_size if layer == 0 else out_size * directions   # w_ih .. w_hr
            for suffix in ("", "_reverse")[:directions]:
                shapes = {"weight_ih": (rows, in_size), "weight_hh": (rows, out_size)}
                if bias:
                    shapes |= {"bias_ih": (rows,), "bias_hh": (rows,)}
                if proj_size:
                    shapes["weight_hr"] = (proj_size, hidden_size)
                for name, shape in shapes.items():
                    setattr(self, f"{name}_l{layer}{suffix}", nn.Parameter(torch.empty(shape)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def state_sizes(self) -> tuple[int, ...]:
        return (self.proj_size or self.hidden_size, self.hidden_size)[:self.state_count]

    def _weights_of(self, layer: int, direction: int) -> dict[str, torch.Tensor | None]:
        suffix = "_reverse" if direction else ""
        return {name: getattr(self, f"{name}_l{layer}{suffix}", None) for name in WEIGHT_NAMES}

    def forward(self, input: torch.Tensor, hx: Any = None,
                dropout_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, Any]:
        states_given = None
        if hx is not None:
            states_given = (hx,) if self.state_count == 1 else tuple(hx)
        count = self.num_layers * self.num_directions
        batched = check_input(self.mode, input, states_given, self.input_size, count,
                              self.state_sizes(), self.batch_first)
        x = input if batched else input.unsqueeze(1)   # unbatched (T, I) -> (T, 1, I)
        if batched and self.batch_first:
            x = x.transpose(0, 1)                      # (B, T, I) -> (T, B, I)
        steps, batch = x.shape[:2]
        if states_given is None:
            states0 = tuple(x.new_zeros(count, batch, size) for size in self.state_sizes())
        else:
            states0 = tuple(s if batched else s.unsqueeze(1) for s in states_given)
        masks = None
        if self.training and self.dropout > 0 and self.num_layers > 1:
            if dropout_mask is None:                   # P(keep) = 1 - p
                width = self.num_directions * self.state_sizes()[0]
                masks = torch.rand(self.num_layers - 1, steps, batch, width,
                                   device=x.device) < 1.0 - self.dropout
            elif not batched:
                masks = dropout_mask.unsqueeze(2)      # (L-1, T, ·) -> (L-1, T, 1, ·)
            else:
                masks = dropout_mask.transpose(1, 2) if self.batch_first else dropout_mask
        finals: list[list[torch.Tensor]] = [[] for _ in states0]
        layer_input = x
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                sequence = layer_input.flip(0) if direction else layer_input
                hs, last = self.cell(sequence, tuple(s[k] for s in states0),
                                     self._weights_of(layer, direction))   # (T, B, H)
                outputs.append(hs.flip(0) if direction else hs)
                for final, state in zip(finals, last, strict=True):
                    final.append(state)
            layer_input = torch.cat(outputs, dim=-1)   # (T, B, D·H) [forward, reverse]
            if masks is not None and layer < self.num_layers - 1:
                scale = 0.0 if self.dropout == 1 else 1.0 / (1.0 - self.dropout)
                layer_input = layer_input * masks[layer] * scale   # y = x ⊙ m / (1 - p)
        output = layer_input
        states_n = tuple(torch.stack(final) for final in finals)   # (L·D, B, ·)
        if not batched:
            output, states_n = output.squeeze(1), tuple(s.squeeze(1) for s in states_n)
        elif self.batch_first:
            output = output.transpose(0, 1)
        return output, (states_n[0] if self.state_count == 1 else states_n)

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


class RNN(RNNBase):
    """``torch.nn.RNN`` written out: forward(input, hx=None) -> (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False) -> None:
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional)
        self.nonlinearity = nonlinearity

    def cell(self, x: torch.Tensor, states0: tuple, weights: dict):
        f = torch.tanh if self.nonlinearity == "tanh" else torch.relu
        xw = x @ weights["weight_ih"].T                # (T, B, H) input term, all steps at once
        if weights["bias_ih"] is not None:
            xw = xw + weights["bias_ih"]
        h, states = states0[0], []
        for t in range(x.shape[0]):                    # the recurrence: step by step
            a = xw[t] + h @ weights["weight_hh"].T     # (B, H)
            if weights["bias_hh"] is not None:
                a = a + weights["bias_hh"]
            h = f(a)                                   # (B, H)
            states.append(h)
        return torch.stack(states), (h,)               # (T, B, H), h_n
