r"""A CNN-RNN hybrid for sequences of images in PyTorch; autograd does the backward.

    f_{b,t} = CNN(x_{b,t})                        (B, T, 400)   shared weights, all frames at once
    h_t     = tanh(f_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh)      (B, T, 32)
    logits  = h_{T-1} W_fcᵀ + b_fc                (B, 5)

Built from the ``cnn`` concept's ``CNNFeatures``, the ``sequence`` family's ``RNN`` and the
``layers`` family's ``Linear`` (torch twins); same constructor and parameter names
(``features.*``, ``rnn.*``, ``fc.*``) as the NumPy twin.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_impl.layers.linear import Linear
from torch_impl.sequence.rnn import RNN
from torch_impl.vision.cnn import CNNFeatures


class CNNRNN(nn.Module):
    """forward(x) -> logits (B, num_classes) for frame sequences x (B, T, C, S, S)."""

    def __init__(self, num_classes: int = 5, hidden_size: int = 32, in_channels: int = 1,
                 channels: tuple[int, int] = (8, 16), kernel_size: int = 3,
                 image_size: int = 28, nonlinearity: str = "tanh") -> None:
        super().__init__()
        self.num_classes = num_classes
        self.hidden_size = hidden_size
        self.features = CNNFeatures(in_channels, channels, kernel_size, image_size)
        self.rnn = RNN(self.features.out_features, hidden_size, nonlinearity=nonlinearity,
                       batch_first=True)
        self.fc = Linear(hidden_size, num_classes)
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frame = (self.features.in_channels, self.features.image_size, self.features.image_size)
        if x.dim() != 5 or tuple(x.shape[2:]) != frame:
            raise ValueError(f"CNNRNN expects frame sequences (B, T, {frame[0]}, {frame[1]}, "
                             f"{frame[2]}), got shape {tuple(x.shape)}")
        batch, steps = x.shape[:2]
        f = self.features(x.reshape(batch * steps, *frame))  # (B·T, 400) every frame, one batch
        f = f.reshape(batch, steps, -1)                # (B, T, 400)
        hs, _ = self.rnn(f)                            # (B, T, 32)
        last = hs[:, -1]                               # (B, 32) h_{T-1}
        if last.requires_grad:
            for tensor in (f, last):
                tensor.retain_grad()  # keep autograd's gradient for the comparison
        self.intermediates = dict(features=f, last_hidden=last)
        return self.fc(last)                           # (B, 5)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, hidden_size={self.hidden_size}"
