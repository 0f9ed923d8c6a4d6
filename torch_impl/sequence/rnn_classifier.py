r"""The seed's ``SequenceClassifierRNN`` in PyTorch: an explicit tanh cell with its own
parameters, a loop over time, the last hidden state into a linear head; autograd does
backpropagation through time.

    h_{-1} = 0,   h_t = tanh(x_t W_ih + h_{t-1} W_hh + b_h),   y = fc(h_{T-1})
    x: (B, T, I) -> y: (B, O);   W_ih (I, H), W_hh (H, H), b_h (H,), fc = Linear(H, O)

Initialization as the seed's: W_ih, W_hh ~ N(0, 1), b_h = 0, the head as ``nn.Linear``.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_impl.layers.linear import Linear


class SequenceClassifierRNN(nn.Module):
    """forward(x (B, T, I)) -> logits (B, O); same parameter names as the NumPy twin."""

    def __init__(self, input_size: int = 6, hidden_size: int = 12, output_size: int = 3) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.output_size = output_size
        self.W_ih = nn.Parameter(torch.randn(input_size, hidden_size))
        self.W_hh = nn.Parameter(torch.randn(hidden_size, hidden_size))
        self.b_h = nn.Parameter(torch.zeros(hidden_size))
        self.fc = Linear(hidden_size, output_size)
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"expected input of shape (batch, seq_len, {self.input_size}), "
                             f"got {tuple(x.shape)}")
        if x.shape[1] == 0:
            raise ValueError("expected a sequence of at least one step, got seq_len = 0")
        h = x.new_zeros(x.shape[0], self.hidden_size)                  # (B, H)  h_{-1} = 0
        for t in range(x.shape[1]):                                    # the recurrence
            h = torch.tanh(x[:, t] @ self.W_ih + h @ self.W_hh + self.b_h)  # (B, H)
        if h.requires_grad:
            h.retain_grad()  # keep autograd's gradient of the last state for the comparison
        self.intermediates = {"h_last": h}
        return self.fc(h)                                              # (B, O)

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"output_size={self.output_size}")
