r"""A fully connected autoencoder, 784 -> 128 -> latent -> 128 -> 784, forward and backward by hand.

Forward, for images x flattened to rows of D = 784 pixels in [0, 1] (shape (B, D)):

    encoder   h1 = ReLU(x W1ᵀ + b1)            (B, 128)
              z  = h1 W2ᵀ + b2                  (B, latent)   the code: linear, no ReLU
    decoder   h2 = ReLU(z W3ᵀ + b3)             (B, 128)
              x̂  = sigmoid(h2 W4ᵀ + b4)         (B, D)        in (0, 1), like the pixels
    loss      L  = 1/(B D) Σ (x̂ - x)²           ()            MSE reconstruction error

The code z is left linear: a ReLU there would clip half of the code to zero and could leave
latent units dead for good; the ReLUs sit "inside", after the two 128-wide layers.

Backward (the chain rule from the loss back to x; ⊙ is elementwise, W has torch's (out, in)
layout, so dL/d(input of a Linear) = g W and dL/dW = gᵀ input, summed over the batch):

    dL/dx̂ = 2 (x̂ - x) / (B D)                        MSE
    dL/dp4 = dL/dx̂ ⊙ x̂ (1 - x̂)                       sigmoid, p4 = h2 W4ᵀ + b4
    dL/dh2 = dL/dp4 W4,    dL/dW4 = dL/dp4ᵀ h2,    dL/db4 = Σ_b dL/dp4
    dL/dp3 = dL/dh2 ⊙ 1[p3 > 0]                       ReLU, p3 = z W3ᵀ + b3
    dL/dz  = dL/dp3 W3,    ...                          and so on down to dL/dh1
    dL/dx  = dL/dp1 W1 - dL/dx̂                         two paths: through the encoder, and as
                                                        the MSE target (∂L/∂x = -∂L/∂x̂ there)

In training x is data and its gradient is not used; it is returned anyway because it is the
gradient of L(x), and autograd computes the same sum of both paths.

Built from the ``layers`` family's Linear, ReLU, Sigmoid and MSELoss; parameter names
``enc1``, ``enc2``, ``dec1``, ``dec2`` (``.weight``, ``.bias``), as in the torch twin.
"""
from __future__ import annotations

import numpy as np

from numpy_impl.layers.activations import ReLU, Sigmoid
from numpy_impl.layers.linear import Linear
from numpy_impl.layers.losses import MSELoss
from numpy_impl.module import Module


class Autoencoder(Module):
    """forward(x) -> the reconstruction loss (a 0-d array); x is (B, in_features) or images
    (B, C, H, W) with C·H·W = in_features. ``reconstruct`` and ``encode`` for inference."""

    def __init__(self, latent_size: int = 32, in_features: int = 784,
                 hidden_size: int = 128) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.in_features = in_features
        self.hidden_size = hidden_size
        self.enc1 = Linear(in_features, hidden_size)
        self.enc_act = ReLU()
        self.enc2 = Linear(hidden_size, latent_size)
        self.dec1 = Linear(latent_size, hidden_size)
        self.dec_act = ReLU()
        self.dec2 = Linear(hidden_size, in_features)
        self.out_act = Sigmoid()
        self.loss_fn = MSELoss()
        self.intermediates: dict[str, np.ndarray] = {}
        self.intermediate_grads: dict[str, np.ndarray] = {}

    def _rows(self, x: np.ndarray) -> np.ndarray:
        rows = np.asarray(x).reshape(len(x), -1)       # (B, D) images -> rows of pixels
        if rows.shape[1] != self.in_features:
            raise ValueError(f"Autoencoder expects {self.in_features} features per example, "
                             f"got input of shape {np.shape(x)}")
        return rows

    def encode(self, x: np.ndarray) -> np.ndarray:
        """z = W2 ReLU(W1 x + b1) + b2, (B, latent)."""
        return self.enc2(self.enc_act(self.enc1(self._rows(x))))

    def decode(self, z: np.ndarray) -> np.ndarray:
        """x̂ = sigmoid(W4 ReLU(W3 z + b3) + b4), (B, in_features)."""
        return self.out_act(self.dec2(self.dec_act(self.dec1(z))))

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        """x̂ in x's shape."""
        return self.decode(self.encode(x)).reshape(np.shape(x))

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._shape = np.shape(x)
        rows = self._rows(x)                           # (B, D)
        z = self.encode(rows)                          # (B, latent)
        x_hat = self.decode(z)                         # (B, D)
        self.intermediates = dict(latent=z, reconstruction=x_hat)
        return self.loss_fn(x_hat, rows)               # () mean of (x̂ - x)²

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        """dL/dx (x's shape) from the upstream gradient of the loss (a scalar, 1 in training);
        accumulates every weight and bias gradient."""
        d_x_hat, d_target = self.loss_fn.backward(grad_output)  # (B, D) each: MSE
        d_p4 = self.out_act.backward(d_x_hat)          # (B, D)       sigmoid: x̂ (1 - x̂)
        d_h2 = self.dec2.backward(d_p4)                # (B, hidden)  Linear 4 (adds dW4, db4)
        d_p3 = self.dec_act.backward(d_h2)             # (B, hidden)  ReLU: 1[p3 > 0]
        d_z = self.dec1.backward(d_p3)                 # (B, latent)  Linear 3
        d_h1 = self.enc2.backward(d_z)                 # (B, hidden)  Linear 2
        d_p1 = self.enc_act.backward(d_h1)             # (B, hidden)  ReLU
        d_rows = self.enc1.backward(d_p1) + d_target   # (B, D)       Linear 1, + the target path
        self.intermediate_grads = dict(latent=d_z, reconstruction=d_x_hat)
        return d_rows.reshape(self._shape)

    def extra_repr(self) -> str:
        return f"latent_size={self.latent_size}, in_features={self.in_features}, " \
               f"hidden_size={self.hidden_size}"
