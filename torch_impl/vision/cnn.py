r"""The small image classifier of the seed examples in PyTorch; autograd does the backward.

    x (B, 1, 28, 28)
    -> conv1: Conv2d(1 -> 8, 3x3)   -> ReLU -> MaxPool2d(2)     (B, 8, 13, 13)
    -> conv2: Conv2d(8 -> 16, 3x3)  -> ReLU -> MaxPool2d(2)     (B, 16, 5, 5)
    -> flatten -> fc: Linear(400 -> 10)                         (B, 10) logits

Built from the ``vision`` family's torch twins (``Conv2d`` as unfold + matmul, ``MaxPool2d``)
and the ``layers`` family's ``ReLU`` and ``Linear``: the same constructor, parameter names
(``features.conv1``, ``features.conv2``, ``fc``) and order as the NumPy twin.
``CNNFeatures`` is the convolutional part, reused per frame by ``cnn_rnn``. ``train_step``
and ``predict`` are the idiomatic training loop's two verbs.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_impl.layers.activations import ReLU
from torch_impl.layers.linear import Linear
from torch_impl.vision.conv2d import Conv2d
from torch_impl.vision.pooling import MaxPool2d


def feature_geometry(image_size: int, kernel_size: int) -> tuple[int, int]:
    """Spatial size after each conv -> pool stage: S -> floor((S - K + 1) / 2), twice."""
    after_first = (image_size - kernel_size + 1) // 2
    after_second = (after_first - kernel_size + 1) // 2
    if after_first < kernel_size or after_second < 1:
        raise ValueError(f"image_size={image_size} is too small for two {kernel_size}x"
                         f"{kernel_size} convolutions each followed by a 2x2 max pool")
    return after_first, after_second


class CNNFeatures(nn.Module):
    """conv1 -> ReLU -> pool -> conv2 -> ReLU -> pool -> flatten: (B, C, S, S) -> (B, F)."""

    def __init__(self, in_channels: int = 1, channels: tuple[int, int] = (8, 16),
                 kernel_size: int = 3, image_size: int = 28) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.channels = tuple(channels)
        self.kernel_size = kernel_size
        self.image_size = image_size
        _, side = feature_geometry(image_size, kernel_size)
        self.out_features = self.channels[1] * side * side        # 400 for the defaults
        self.conv1 = Conv2d(in_channels, self.channels[0], kernel_size)
        self.act1 = ReLU()
        self.pool1 = MaxPool2d(2)
        self.conv2 = Conv2d(self.channels[0], self.channels[1], kernel_size)
        self.act2 = ReLU()
        self.pool2 = MaxPool2d(2)
        self.intermediates: dict[str, torch.Tensor] = {}

    def _check(self, x: torch.Tensor) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects images (B, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}), got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        a1 = self.conv1(x)                             # (B, 8, 26, 26)
        p1 = self.pool1(self.act1(a1))                 # (B, 8, 13, 13)
        a2 = self.conv2(p1)                            # (B, 16, 11, 11)
        p2 = self.pool2(self.act2(a2))                 # (B, 16, 5, 5)
        f = p2.flatten(1)                              # (B, 400)
        if f.requires_grad:
            for tensor in (a1, p1, a2, f):
                tensor.retain_grad()  # keep autograd's gradient for the comparison
        self.intermediates = dict(conv1=a1, pool1=p1, conv2=a2, features=f)
        return f

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, channels={self.channels}, "
                f"kernel_size={self.kernel_size}, image_size={self.image_size}")


class CNN(nn.Module):
    """forward(x) -> logits (B, num_classes) for images x (B, in_channels, S, S)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 channels: tuple[int, int] = (8, 16), kernel_size: int = 3,
                 image_size: int = 28) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = CNNFeatures(in_channels, channels, kernel_size, image_size)
        self.fc = Linear(self.features.out_features, num_classes)
        self.intermediates: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)                           # (B, 400)
        self.intermediates = self.features.intermediates  # conv1, pool1, conv2, features
        return self.fc(f)                              # (B, 10) logits

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


# --- training: one step, and predictions ------------------------------------------------------
def train_step(model: nn.Module, loss_fn: nn.Module, optimizer: torch.optim.Optimizer,
               x: torch.Tensor, y: torch.Tensor) -> float:
    """zero_grad; L = loss_fn(model(x), y); L.backward(); optimizer.step(). Returns L."""
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)                        # ()
    loss.backward()
    optimizer.step()
    return loss.item()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """The predicted class of every image (N,), in chunks of ``batch_size`` images."""
    chunks = [model(x[start:start + batch_size]).argmax(dim=1)
              for start in range(0, len(x), batch_size)]
    return torch.cat(chunks)
