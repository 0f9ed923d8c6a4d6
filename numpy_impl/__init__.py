"""Hand-written NumPy twins: forward and backward for every concept, no autograd, no torch."""
from numpy_impl.module import Module, ModuleList, Parameter
from numpy_impl.random import manual_seed, set_default_dtype

__all__ = ["Module", "ModuleList", "Parameter", "manual_seed", "set_default_dtype"]
