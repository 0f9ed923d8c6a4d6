"""Compare positional encodings: learned (an Embedding over positions) and sinusoidal.

Learned cases: a sequence shorter than ``max_len`` (rows t >= T get no gradient), the full
length, one position; compared: the output, dL/dx (= g) and dL/dW (row t sums the batch's
g[:, t]). Sinusoidal cases: even and odd ``d_model``, a 64-position table; compared: the
output, dL/dx (= g: the table is a constant) and the table ``buffer.pe`` that each twin
computes for itself (in float64 NumPy's and torch's pow round 10000^{2i/C} differently, so
the tables differ by up to an ulp of the angle t / 10000^{2i/C}; in float32 they are bitwise
equal, tests/transformer/test_positional_encoding.py).

Witnesses: for learned, ``nn.Embedding`` looked up at ``torch.arange(T)`` (the twin slices
the weight instead); torch has no sinusoidal encoding, so its witness is the other common
formulation, frequencies as exp(-2i ln(10000) / C) (the twins use 10000^{-2i/C}).
Plot ``positional_encoding.png``: the sinusoidal table and the dot-product similarity of
positions, P P^T, which depends only on the distance between two positions.
Run: ``python -m compare.transformer.positional_encoding``.

Benchmark size: (N, T, C) = (32, 512, 512).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compare.concept import Bench, Case, Concept, randn
from numpy_impl.transformer import positional_encoding as numpy_twin
from torch_impl.transformer import positional_encoding as torch_twin


class BuiltinLearned(nn.Module):
    """``nn.Embedding`` looked up at positions 0..T-1 and added."""

    def __init__(self, max_len: int, d_model: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(max_len, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding(torch.arange(x.shape[1], device=x.device))


class BuiltinSinusoidal(nn.Module):
    """The sinusoidal table with frequencies exp(-2i ln(10000) / C)."""

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        position = torch.arange(max_len, dtype=torch.float64).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float64)
                             * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model, dtype=torch.float64)
        pe[:, 0::2] = torch.sin(position * div_term)
        pe[:, 1::2] = torch.cos(position * div_term[:d_model // 2])
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[:x.shape[-2]].to(x.dtype)


def _learned(name: str, max_len: int, *shape: int) -> Case:
    return Case(name, numpy=numpy_twin.LearnedPositionalEmbedding,
                torch=torch_twin.LearnedPositionalEmbedding, builtin=BuiltinLearned,
                init=dict(max_len=max_len, d_model=shape[-1]), inputs=dict(x=randn(*shape)))


def _sinusoidal(name: str, max_len: int, *shape: int) -> Case:
    return Case(name, numpy=numpy_twin.SinusoidalPositionalEncoding,
                torch=torch_twin.SinusoidalPositionalEncoding, builtin=BuiltinSinusoidal,
                init=dict(d_model=shape[-1], max_len=max_len), inputs=dict(x=randn(*shape)))


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """positional_encoding.png: the sinusoidal table P and the similarity P P^T."""
    from compare.plots import new_figure, save

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    table = numpy_twin.sinusoidal_table(128, 64)                      # (T, C)
    twin = torch_twin.sinusoidal_table(128, 64).numpy()
    similarity = table @ table.T                                      # (T, T)
    fig = new_figure(figsize=(12, 4.8), layout=None)
    axes = fig.subplots(1, 2)
    image = axes[0].imshow(table.T, aspect="auto", cmap="RdBu", vmin=-1, vmax=1,
                           origin="lower")
    axes[0].set_xlabel("position t")
    axes[0].set_ylabel("dimension (even: sin, odd: cos)")
    axes[0].set_title("Sinusoidal encoding P[t, :], C = 64, float64\n"
                      f"max |NumPy - torch| = {np.abs(table - twin).max():.1e}")
    fig.colorbar(image, ax=axes[0])
    image = axes[1].imshow(similarity, cmap="viridis", origin="lower")
    axes[1].set_xlabel("position s")
    axes[1].set_ylabel("position t")
    axes[1].set_title("Dot-product similarity P[t] . P[s]\n(a function of t - s only: bands)")
    fig.colorbar(image, ax=axes[1])
    fig.tight_layout()
    path = directory / "positional_encoding.png"
    save(fig, path, dpi=100)
    return [path]


CONCEPT = Concept(
    name="positional_encoding",
    family="transformer",
    summary="positional encodings: learned (an Embedding over positions) and sinusoidal",
    compares="output; grad of x (= g); learned: grad of the position table (rows summed over "
             "the batch, none beyond T); sinusoidal: the table each twin computes (even and "
             "odd d_model)",
    witness="nn.Embedding; the exp-log sinusoidal formulation",
    extra_plots=extra_plots,
    bench=Bench("learned and sinusoidal encodings on x (N, T, C) = (32, 512, 512)",
                cases=(_learned("bench-learned", 512, 32, 512, 512),
                       _sinusoidal("bench-sinusoidal", 512, 32, 512, 512))),
    cases=[
        _learned("learned", 7, 2, 5, 8),
        _learned("learned-full-length", 6, 3, 6, 4),
        _learned("learned-one-position", 4, 2, 1, 4),
        _sinusoidal("sinusoidal", 16, 2, 5, 8),
        _sinusoidal("sinusoidal-odd-dim", 6, 2, 6, 7),
        _sinusoidal("sinusoidal-64-positions", 64, 1, 64, 16),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
