"""Gaussian blobs: a small synthetic classification data set, generated from a seed.

Class c has a centre m_c ~ N(0, separation^2 I) in ``features`` dimensions; its points are
m_c + spread * N(0, I). Overlapping blobs (spread comparable to the separation) leave room to
overfit: a large model memorizes the training points and its validation loss turns up.
"""
from __future__ import annotations

import numpy as np


def gaussian_blobs(rng: np.random.Generator, n: int, classes: int = 3, features: int = 4,
                   separation: float = 2.0, spread: float = 1.5
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, features) float64, y (n,) int64): n points, classes drawn uniformly."""
    centres = separation * rng.standard_normal((classes, features))   # (C, F)
    y = rng.integers(0, classes, size=n, dtype=np.int64)               # (n,)
    x = centres[y] + spread * rng.standard_normal((n, features))       # (n, F)
    return x, y


def split(rng: np.random.Generator, n: int, val: float = 0.2, test: float = 0.2
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Random train / validation / test index sets (a permutation cut in three)."""
    order = rng.permutation(n)
    n_val, n_test = int(round(val * n)), int(round(test * n))
    return order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]
