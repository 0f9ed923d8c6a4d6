r"""Long short-term memory in PyTorch: the cell written out with tensor ops on the shared
``RNNBase`` (layers, directions, dropout between layers, states, layouts); autograd does
backpropagation through time.

    a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh        (B, 4H) = [a_i, a_f, a_g, a_o]
    i, f, o = σ(a_i), σ(a_f), σ(a_o);   g = tanh(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g;   m_t = o ⊙ tanh(c_t);   h_t = m_t  (or m_t W_hrᵀ with proj_size)

Same constructor, parameter names, shapes, order and init as ``torch.nn.LSTM``, so its
state_dict loads into ``nn.LSTM`` unchanged. ``CharLSTM`` (embedding -> LSTM -> linear) is the
character-level next-character model, and ``train_step`` one step of its training.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_impl.layers.embedding import Embedding
from torch_impl.layers.linear import Linear
from torch_impl.layers.losses import CrossEntropyLoss
from torch_impl.sequence.rnn import RNNBase


class LSTM(RNNBase):
    """``torch.nn.LSTM`` written out: forward(input, hx=None) -> (output, (h_n, c_n))."""

    gate_count = 4
    state_count = 2
    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0) -> None:
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size)

    def cell(self, x: torch.Tensor, states0: tuple, weights: dict):
        xw = x @ weights["weight_ih"].T                # (T, B, 4H) input term, all steps at once
        if weights["bias_ih"] is not None:
            xw = xw + weights["bias_ih"]
        (h, c), hs = states0, []
        for t in range(x.shape[0]):                    # the recurrence: step by step
            a = xw[t] + h @ weights["weight_hh"].T     # (B, 4H)
            if weights["bias_hh"] is not None:
                a = a + weights["bias_hh"]
            a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)    # (B, H) each, torch's order i, f, g, o
            i, f, g, o = torch.sigmoid(a_i), torch.sigmoid(a_f), torch.tanh(a_g), \
                torch.sigmoid(a_o)
            c = f * c + i * g                          # (B, H)
            h = o * torch.tanh(c)                      # (B, H)
            if weights["weight_hr"] is not None:
                h = h @ weights["weight_hr"].T         # (B, P) the projection
            hs.append(h)
        return torch.stack(hs), (h, c)                 # (T, B, ·), (h_n, c_n)


class CharLSTM(nn.Module):
    """Embedding -> LSTM (batch_first) -> Linear: next-character logits (B, T, V), or the
    mean cross-entropy over all B·T positions when targets are given."""

    def __init__(self, vocab_size: int = 27, n_embd: int = 16, hidden_size: int = 32,
                 num_layers: int = 1) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = Embedding(vocab_size, n_embd)
        self.lstm = LSTM(n_embd, hidden_size, num_layers=num_layers, batch_first=True)
        self.head = Linear(hidden_size, vocab_size)
        self.loss_fn = CrossEntropyLoss()

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.embedding(idx)                      # (B, T, E)
        hs, _ = self.lstm(emb)                         # (B, T, H)
        logits = self.head(hs)                         # (B, T, V)
        if targets is None:
            return logits
        return self.loss_fn(logits.reshape(-1, self.vocab_size), targets.reshape(-1))


def train_step(model: CharLSTM, optimizer: torch.optim.Optimizer, idx: torch.Tensor,
               targets: torch.Tensor) -> float:
    """One step: zero the gradients, the loss, autograd's backward, the update."""
    optimizer.zero_grad()
    loss = model(idx, targets)
    loss.backward()
    optimizer.step()
    return loss.item()
