r"""The small image classifier of the seed examples, forward and backward by hand.

    x (B, 1, 28, 28)
    -> conv1: Conv2d(1 -> 8, 3x3)   -> ReLU -> MaxPool2d(2)     (B, 8, 26, 26) -> (B, 8, 13, 13)
    -> conv2: Conv2d(8 -> 16, 3x3)  -> ReLU -> MaxPool2d(2)     (B, 16, 11, 11) -> (B, 16, 5, 5)
    -> flatten                                                  (B, 400)
    -> fc: Linear(400 -> 10)                                    (B, 10) logits

Spatial sizes: a 3x3 convolution without padding takes S to S - 2, a 2x2 max pool with stride 2
takes S to floor(S / 2): 28 -> 26 -> 13 -> 11 -> 5, and 16 · 5 · 5 = 400 features.

Forward, with a_1, a_2 the convolutions' outputs (pre-activations):

    a_1 = W_1 * x + b_1,          p_1 = maxpool(ReLU(a_1))
    a_2 = W_2 * p_1 + b_2,        p_2 = maxpool(ReLU(a_2))
    f   = flatten(p_2),           logits = f W_3ᵀ + b_3

Backward, given G = dL/dlogits (for training, the cross-entropy's softmax(logits) - onehot(y),
divided by B). Each layer is the chain rule of one building block, written once elsewhere:

    dL/df   = G W_3,   dL/dW_3 = Gᵀ f,   dL/db_3 = Σ_b G           Linear
    dL/dp_2 = unflatten(dL/df)                                    reshape (B, 400) -> (B, 16, 5, 5)
    dL/dr_2 = the pool's gradient: each window's winner gets it   max pool (r_2 = ReLU(a_2))
    dL/da_2 = dL/dr_2 ⊙ 1[a_2 > 0]                                ReLU
    dL/dp_1, dL/dW_2, dL/db_2 = conv2's backward                  col2im(W_2ᵀ G_2), G_2 cols_2ᵀ
    ... the same three steps through pool 1, ReLU 1 and conv1 down to dL/dx

The building blocks are the ``vision`` family's ``Conv2d`` (im2col and one matrix product) and
``MaxPool2d``, the ``layers`` family's ``ReLU`` and ``Linear``. ``CNNFeatures`` is the
convolutional part (x -> f, reused per frame by ``cnn_rnn``); ``CNN`` is ``features`` then
``fc``. Parameter names as in the torch twin: ``features.conv1``, ``features.conv2``,
``fc`` (``.weight``, ``.bias``).

``train_step`` and ``predict`` are the training loop's two verbs, spelled as in the torch twin.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy_impl.layers.activations import ReLU
from numpy_impl.layers.linear import Linear
from numpy_impl.module import Module
from numpy_impl.vision.conv2d import Conv2d
from numpy_impl.vision.pooling import MaxPool2d


def feature_geometry(image_size: int, kernel_size: int) -> tuple[int, int]:
    """Spatial size after each conv -> pool stage: S -> floor((S - K + 1) / 2), twice."""
    after_first = (image_size - kernel_size + 1) // 2
    after_second = (after_first - kernel_size + 1) // 2
    if after_first < kernel_size or after_second < 1:
        raise ValueError(f"image_size={image_size} is too small for two {kernel_size}x"
                         f"{kernel_size} convolutions each followed by a 2x2 max pool")
    return after_first, after_second


class CNNFeatures(Module):
    """conv1 -> ReLU -> pool -> conv2 -> ReLU -> pool -> flatten: (B, C, S, S) -> (B, F),
    F = channels[1] · s², s the spatial size after the second pool (5 for S = 28, K = 3)."""

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
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def _check(self, x: np.ndarray) -> None:
        expected = (self.in_channels, self.image_size, self.image_size)
        if np.ndim(x) != 4 or tuple(np.shape(x)[1:]) != expected:
            raise ValueError(f"{type(self).__name__} expects images (B, {expected[0]}, "
                             f"{expected[1]}, {expected[2]}), got shape {np.shape(x)}")

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check(x)
        a1 = self.conv1(x)                             # (B, 8, 26, 26)  a_1 = W_1 * x + b_1
        p1 = self.pool1(self.act1(a1))                 # (B, 8, 13, 13)  p_1 = maxpool(ReLU(a_1))
        a2 = self.conv2(p1)                            # (B, 16, 11, 11) a_2 = W_2 * p_1 + b_2
        p2 = self.pool2(self.act2(a2))                 # (B, 16, 5, 5)   p_2 = maxpool(ReLU(a_2))
        self._pooled_shape = p2.shape
        f = p2.reshape(len(p2), -1)                    # (B, 400)        f = flatten(p_2)
        self.intermediates = dict(conv1=a1, pool1=p1, conv2=a2, features=f)
        return f

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx from dL/df (B, F); adds the convolutions' weight and bias gradients."""
        d_p2 = grad_output.reshape(self._pooled_shape)  # (B, 16, 5, 5)   unflatten
        d_r2 = self.pool2.backward(d_p2)               # (B, 16, 11, 11) max pool: to the winner
        d_a2 = self.act2.backward(d_r2)                # (B, 16, 11, 11) ReLU: 1[a_2 > 0]
        d_p1 = self.conv2.backward(d_a2)               # (B, 8, 13, 13)  conv2 (adds dW_2, db_2)
        d_r1 = self.pool1.backward(d_p1)               # (B, 8, 26, 26)  max pool
        d_a1 = self.act1.backward(d_r1)                # (B, 8, 26, 26)  ReLU
        d_x = self.conv1.backward(d_a1)                # (B, 1, 28, 28)  conv1 (adds dW_1, db_1)
        self.intermediate_grads = dict(conv1=d_a1, pool1=d_p1, conv2=d_a2, features=grad_output)
        return d_x

    def extra_repr(self) -> str:
        return (f"in_channels={self.in_channels}, channels={self.channels}, "
                f"kernel_size={self.kernel_size}, image_size={self.image_size}")


class CNN(Module):
    """forward(x) -> logits (B, num_classes) for images x (B, in_channels, S, S)."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1,
                 channels: tuple[int, int] = (8, 16), kernel_size: int = 3,
                 image_size: int = 28) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.features = CNNFeatures(in_channels, channels, kernel_size, image_size)
        self.fc = Linear(self.features.out_features, num_classes)
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        f = self.features(x)                           # (B, 400) the convolutional features
        self.intermediates = self.features.intermediates  # conv1, pool1, conv2, features
        return self.fc(f)                              # (B, 10)  logits = f W_3ᵀ + b_3

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        d_f = self.fc.backward(grad_output)            # (B, 400) Linear (adds dW_3, db_3)
        d_x = self.features.backward(d_f)              # (B, 1, 28, 28) through the features
        self.intermediate_grads = self.features.intermediate_grads
        return d_x

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


# --- training: one step, and predictions ------------------------------------------------------
def train_step(model: Module, loss_fn: Module, optimizer: Any, x: np.ndarray,
               y: np.ndarray) -> float:
    """zero_grad; L = loss_fn(model(x), y); backward from dL/dL = 1; optimizer.step().
    Returns L (before the update), as the torch twin's ``train_step``."""
    optimizer.zero_grad()
    logits = model(x)                                  # (B, 10)
    loss = loss_fn(logits, y)                          # ()  cross-entropy, mean over the batch
    d_logits = loss_fn.backward(np.ones((), dtype=logits.dtype))  # (B, 10) (softmax - onehot)/B
    model.backward(d_logits)                           # adds every parameter's gradient
    optimizer.step()
    return float(loss)


def predict(model: Module, x: np.ndarray, batch_size: int = 500) -> np.ndarray:
    """The predicted class of every image (N,), in chunks of ``batch_size`` images."""
    chunks = [model(x[start:start + batch_size]).argmax(axis=1)
              for start in range(0, len(x), batch_size)]
    return np.concatenate(chunks)
