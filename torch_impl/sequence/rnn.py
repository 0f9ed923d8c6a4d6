r"""The Elman recurrent network in PyTorch: the recurrence written out with tensor ops, autograd
does backpropagation through time.

    a_t^l = x_t^l W_ih^lᵀ + b_ih^l + h_{t-1}^l W_hh^lᵀ + b_hh^l,    h_t^l = f(a_t^l)  (tanh or ReLU)
    output = h_t^{L-1} for every t;   h_n = h_{T-1}^l for every layer l

Same constructor, parameter names (``weight_ih_l0``, ``weight_hh_l0``, ``bias_ih_l0``,
``bias_hh_l0``, per layer), layouts and init (U(-1/√H, 1/√H)) as ``torch.nn.RNN``, so its
state_dict loads into ``nn.RNN`` unchanged. Dropout between layers and bidirectional RNNs are
rejected, as in the NumPy twin.
"""
from __future__ import annotations

import math

import torch
from torch import nn


class RNN(nn.Module):
    """``torch.nn.RNN`` written out: forward(input, h0=None) -> (output, h_n)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False) -> None:
        super().__init__()
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or "
                             "'relu'.")
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"hidden_size must be a positive integer, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"num_layers must be a positive integer, got {num_layers!r}")
        if dropout != 0:
            raise ValueError(f"dropout={dropout} is not supported by this RNN (it would need a "
                             "dropout mask shared by both twins); use dropout=0")
        if bidirectional:
            raise ValueError("bidirectional=True is not supported by this RNN; use two RNNs, "
                             "one on the reversed sequence")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.nonlinearity = nonlinearity
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        for layer in range(num_layers):                # torch's order: w_ih, w_hh, b_ih, b_hh
            in_size = input_size if layer == 0 else hidden_size
            setattr(self, f"weight_ih_l{layer}", nn.Parameter(torch.empty(hidden_size, in_size)))
            setattr(self, f"weight_hh_l{layer}",
                    nn.Parameter(torch.empty(hidden_size, hidden_size)))
            if bias:
                setattr(self, f"bias_ih_l{layer}", nn.Parameter(torch.empty(hidden_size)))
                setattr(self, f"bias_hh_l{layer}", nn.Parameter(torch.empty(hidden_size)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)

    def forward(self, input: torch.Tensor,
                h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if input.dim() not in (2, 3):
            raise ValueError(f"RNN: Expected input to be 2D or 3D, got {input.dim()}D tensor "
                             "instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {input.shape[-1]}")
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(1)   # unbatched (T, I) -> (T, 1, I)
        if batched and self.batch_first:
            x = x.transpose(0, 1)                      # (B, T, I) -> (T, B, I)
        steps, batch = x.shape[:2]
        if steps == 0:
            raise RuntimeError("Expected sequence length to be larger than 0 in RNN")
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, batch, self.hidden_size)
        else:
            if h0.dim() != input.dim():
                kind = "batched 3-D" if batched else "unbatched 2-D"
                raise RuntimeError(f"For {kind} input, hx should also be {input.dim()}-D but "
                                   f"got {h0.dim()}-D tensor")
            h0 = h0 if batched else h0.unsqueeze(1)    # (L, H) -> (L, 1, H)
            expected = (self.num_layers, batch, self.hidden_size)
            if tuple(h0.shape) != expected:
                raise RuntimeError(f"Expected hidden size {expected}, got {list(h0.shape)}")
        f = torch.tanh if self.nonlinearity == "tanh" else torch.relu
        layer_input, last = x, []
        for layer in range(self.num_layers):
            w_ih = getattr(self, f"weight_ih_l{layer}")
            w_hh = getattr(self, f"weight_hh_l{layer}")
            xw = layer_input @ w_ih.T                  # (T, B, H) input term, all steps at once
            if self.bias:
                xw = xw + getattr(self, f"bias_ih_l{layer}")
            h, states = h0[layer], []
            for t in range(steps):                     # the recurrence: step by step
                a = xw[t] + h @ w_hh.T                 # (B, H)
                if self.bias:
                    a = a + getattr(self, f"bias_hh_l{layer}")
                h = f(a)                               # (B, H)
                states.append(h)
            layer_input = torch.stack(states)          # (T, B, H) the next layer's input
            last.append(h)
        output, h_n = layer_input, torch.stack(last)   # (T, B, H), (L, B, H)
        if not batched:
            return output.squeeze(1), h_n.squeeze(1)   # (T, H), (L, H)
        return (output.transpose(0, 1) if self.batch_first else output), h_n

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
