"""The convolutional feature extractor from torch's built-in layers: the witness part shared by
``cnn`` and ``cnn_rnn``. A private helper: the registry skips files whose names start with
``_``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch_impl.vision import cnn as torch_cnn


class BuiltinCNNFeatures(nn.Module):
    """The convolutional part from torch's built-in layers (also ``cnn_rnn``'s witness)."""

    def __init__(self, in_channels: int = 1, channels: tuple[int, int] = (8, 16),
                 kernel_size: int = 3, image_size: int = 28) -> None:
        super().__init__()
        _, side = torch_cnn.feature_geometry(image_size, kernel_size)
        self.out_features = channels[1] * side * side
        self.conv1 = nn.Conv2d(in_channels, channels[0], kernel_size)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(channels[0], channels[1], kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p1 = self.pool(F.relu(self.conv1(x)))          # (B, 8, 13, 13)
        p2 = self.pool(F.relu(self.conv2(p1)))         # (B, 16, 5, 5)
        return p2.flatten(1)                           # (B, 400)
