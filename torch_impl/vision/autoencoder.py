r"""A fully connected autoencoder in PyTorch, 784 -> 128 -> latent -> 128 -> 784: the forward
written out, autograd does the backward.

    h1 = ReLU(x W1ᵀ + b1),  z = h1 W2ᵀ + b2,  h2 = ReLU(z W3ᵀ + b3),  x̂ = sigmoid(h2 W4ᵀ + b4)
    L  = mean((x̂ - x)²)

The code z is linear (no ReLU on the bottleneck). Same constructor and parameter names
(``enc1``, ``enc2``, ``dec1``, ``dec2``) as the NumPy twin; built from the ``layers`` family's
torch twins.
"""
from __future__ import annotations

import torch
from torch import nn

from torch_impl.layers.activations import ReLU, Sigmoid
from torch_impl.layers.linear import Linear
from torch_impl.layers.losses import MSELoss


class Autoencoder(nn.Module):
    """forward(x) -> the reconstruction loss; x is (B, in_features) or images (B, C, H, W)."""

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
        self.intermediates: dict[str, torch.Tensor] = {}

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(x.shape[0], -1)               # (B, D) images -> rows of pixels
        if rows.shape[1] != self.in_features:
            raise ValueError(f"Autoencoder expects {self.in_features} features per example, "
                             f"got input of shape {tuple(x.shape)}")
        return rows

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.enc2(self.enc_act(self.enc1(self._rows(x))))      # (B, latent)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.out_act(self.dec2(self.dec_act(self.dec1(z))))    # (B, D)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x)).reshape(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self._rows(x)                           # (B, D)
        z = self.encode(rows)                          # (B, latent)
        x_hat = self.decode(z)                         # (B, D)
        for tensor in (z, x_hat):
            if tensor.requires_grad:
                tensor.retain_grad()  # keep autograd's gradient for the comparison
        self.intermediates = dict(latent=z, reconstruction=x_hat)
        return self.loss_fn(x_hat, rows)               # () mean of (x̂ - x)²

    def extra_repr(self) -> str:
        return f"latent_size={self.latent_size}, in_features={self.in_features}, " \
               f"hidden_size={self.hidden_size}"
