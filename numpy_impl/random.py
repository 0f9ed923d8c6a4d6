"""Global random state and default dtype of the NumPy twins, mirroring ``torch.manual_seed``
and ``torch.get_default_dtype``: a twin's constructor draws its initial weights from here."""
from __future__ import annotations

import numpy as np

_generator = np.random.default_rng(0)
_default_dtype = np.dtype(np.float32)  # as torch: new parameters are float32


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator that NumPy twins draw initial weights and masks from."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def generator() -> np.random.Generator:
    return _generator


def default_dtype() -> np.dtype:
    return _default_dtype


def set_default_dtype(dtype: np.dtype | type) -> None:
    global _default_dtype
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"default dtype must be a floating-point dtype, got {dtype}")
    _default_dtype = dtype


def uniform(low: float, high: float, shape: tuple[int, ...]) -> np.ndarray:
    """U(low, high) in the default dtype: the building block of torch's default inits."""
    return _generator.uniform(low, high, size=shape).astype(_default_dtype)
