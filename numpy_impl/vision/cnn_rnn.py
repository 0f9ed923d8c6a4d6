r"""A CNN-RNN hybrid for sequences of images, forward and backward by hand.

Input: B sequences of T frames, x (B, T, 1, 28, 28). Every frame goes through the same
convolutional feature extractor (the ``cnn`` concept's ``CNNFeatures``: conv -> ReLU -> pool,
twice, then flatten), the feature sequence through an Elman RNN (the ``sequence`` family's
``RNN``), and the hidden state after the last frame through a linear classifier:

    f_{b,t} = CNN(x_{b,t})                        (B, T, 400)   the same weights for every frame
    h_t     = tanh(f_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh),  h_{-1} = 0     (B, T, 32)
    logits  = h_{T-1} W_fcᵀ + b_fc                (B, 5)

Frames are independent until the RNN, so the CNN runs once on all B·T frames as one batch
(a reshape, no loop), and only the recurrence steps through time.

Backward, given G = dL/dlogits (B, 5):

    dL/dh_{T-1} = G W_fc,  dL/dW_fc = Gᵀ h_{T-1},  dL/db_fc = Σ_b G     Linear
    dL/dh_t     = 0 for t < T-1 through the output                     only h_{T-1} is read
    dL/df       = backpropagation through time (the RNN's backward):  the recurrence carries
                  dL/dh_{T-1} back to every earlier step               (B, T, 400)
    dL/dx       = the CNN's backward on all B·T frames as one batch    (B·T, 1, 28, 28)

Because the CNN's weights are shared by all frames, their gradient is the sum over frames:
running its backward on the B·T frames as one batch adds them up exactly as a batch does.

Parameter names as in the torch twin: ``features.conv1``, ``features.conv2`` (``.weight``,
``.bias``), ``rnn.weight_ih_l0``, ``rnn.weight_hh_l0``, ``rnn.bias_ih_l0``, ``rnn.bias_hh_l0``,
``fc.weight``, ``fc.bias``.
"""
from __future__ import annotations

import numpy as np

from numpy_impl.layers.linear import Linear
from numpy_impl.module import Module
from numpy_impl.sequence.rnn import RNN
from numpy_impl.vision.cnn import CNNFeatures


class CNNRNN(Module):
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
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def forward(self, x: np.ndarray) -> np.ndarray:
        frame = (self.features.in_channels, self.features.image_size, self.features.image_size)
        if np.ndim(x) != 5 or tuple(np.shape(x)[2:]) != frame:
            raise ValueError(f"CNNRNN expects frame sequences (B, T, {frame[0]}, {frame[1]}, "
                             f"{frame[2]}), got shape {np.shape(x)}")
        batch, steps = x.shape[:2]
        self._shape = x.shape
        frames = x.reshape(batch * steps, *frame)      # (B·T, 1, 28, 28) every frame, one batch
        f = self.features(frames)                      # (B·T, 400)       the shared CNN
        f = f.reshape(batch, steps, -1)                # (B, T, 400)
        hs, _ = self.rnn(f)                            # (B, T, 32)       h_t for every t
        last = hs[:, -1]                               # (B, 32)          h_{T-1}
        self.intermediates = dict(features=f, last_hidden=last)
        return self.fc(last)                           # (B, 5)           logits

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx (B, T, C, S, S) from dL/dlogits (B, num_classes); accumulates every weight's
        and bias's gradient."""
        batch, steps = self._shape[:2]
        d_last = self.fc.backward(grad_output)         # (B, 32)    Linear (adds dW_fc, db_fc)
        d_hs = np.zeros((batch, steps, self.hidden_size), dtype=d_last.dtype)  # (B, T, 32)
        d_hs[:, -1] = d_last                           # only h_{T-1} was read
        d_f = self.rnn.backward((d_hs, None))          # (B, T, 400) through time (adds the
                                                       #             RNN's weight gradients)
        d_frames = self.features.backward(d_f.reshape(batch * steps, -1))  # (B·T, 1, 28, 28)
        self.intermediate_grads = dict(features=d_f, last_hidden=d_last)
        return d_frames.reshape(self._shape)           # (B, T, 1, 28, 28)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, hidden_size={self.hidden_size}"
