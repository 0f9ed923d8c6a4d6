"""Central finite differences in float64, for any NumPy function or module.

    dL/dθ_i ≈ (L(θ + h e_i) - L(θ - h e_i)) / 2h
    (2h: the step actually taken, (θ_i + h) - (θ_i - h) as rounded)

``L`` is a scalar: for a module with output y and upstream gradient g it is ``sum(g * y)``, whose
gradient is exactly what ``backward(g)`` returns. Each element is perturbed in place and restored.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from compare.tolerances import FINITE_DIFFERENCE_STEP


def numerical_gradient(loss: Callable[[], float], array: np.ndarray,
                       indices: Sequence[int] | None = None,
                       h: float = FINITE_DIFFERENCE_STEP) -> np.ndarray:
    """dL/d array by central differences, at the given flat ``indices`` (all if None).

    ``array`` must be the float64 array that ``loss`` reads (it is perturbed in place);
    returns the full gradient's shape when ``indices`` is None, else one value per index.
    """
    if array.dtype != np.float64:
        raise TypeError(f"finite differences need float64, got {array.dtype}")
    flat = array.reshape(-1)  # a view: writing into it perturbs `array`
    if not np.shares_memory(flat, array):
        raise ValueError("finite differences need a contiguous array to perturb in place")
    chosen = range(flat.size) if indices is None else indices
    grads = np.empty(len(chosen))
    for k, i in enumerate(chosen):  # a loop over elements is inherent to finite differences
        original = flat[i]
        flat[i] = original + h
        plus, up = loss(), flat[i]
        flat[i] = original - h
        minus, down = loss(), flat[i]
        flat[i] = original
        # divide by the step actually taken: x + h is rounded to the grid of x, so at x ~ 1e4
        # the step is off by up to ulp(x)/2 ~ 1e-12, 1e-6 of h; up - down is exact
        grads[k] = (plus - minus) / (up - down)
    return grads.reshape(array.shape) if indices is None else grads


def kink_resolved(loss: Callable[[], float], array: np.ndarray, indices: Sequence[int],
                  analytic: np.ndarray, numeric: np.ndarray,
                  h: float = FINITE_DIFFERENCE_STEP) -> tuple[np.ndarray, int]:
    """Central differences that straddle a kink, replaced by the one-sided slope that is clean.

    With a kink (a ReLU's zero, a max-pool tie) at x + d inside the step, the slope left of x,
    (L(x) - L(x - h)) / h, sees no kink and equals dL/dx to O(h f''), while the central
    difference is off by half the jump in slope. An element whose central difference misses the
    analytic gradient by more than 1e-7 of the tensor's scale is looked at from both sides: if
    the two one-sided slopes differ by a jump J (over 1e-7 of the scale) and the analytic
    gradient matches one of them to 1 % of J (and to 1e-4 of the scale), that slope is its
    numeric value. Without a kink the two slopes differ by h f'' and the central difference,
    their mean, is the accurate one, and the central value stays. A replaced value is still
    held to the finite-difference bound, so picking a side never hides an error larger than
    that bound; a wrong backward matches neither side, and the count of replaced elements is
    reported with the check. (A kink whose slope jump is small, 1.5e-3 in a conv weight's
    gradient of 1.6 at cnn seed 103 and 1.5e-5 in a bias's gradient of 2.0 at seed 178,
    spoils the central difference by half of it: beyond the finite-difference bound, yet far
    above the rounding of a one-sided slope over h.) ``indices`` are the flat positions in
    ``array`` of ``analytic`` and ``numeric`` (both flat); returns (numeric, replaced).
    """
    numeric = np.array(numeric, dtype=np.float64).reshape(-1)
    analytic = np.asarray(analytic, dtype=np.float64).reshape(-1)
    scale = max(float(np.max(np.abs(numeric), initial=0.0)), np.finfo(np.float64).tiny)
    suspects = np.flatnonzero(np.abs(analytic - numeric) > 1e-7 * scale)
    if suspects.size == 0:
        return numeric, 0
    flat = array.reshape(-1)
    center = loss()
    replaced = 0
    for k in suspects:  # few elements, each three losses
        i = indices[k]
        original = flat[i]
        flat[i] = original + h
        plus, up = loss(), flat[i]
        flat[i] = original - h
        minus, down = loss(), flat[i]
        flat[i] = original
        right, left = (plus - center) / (up - original), (center - minus) / (original - down)
        jump = abs(right - left)
        if jump > 1e-7 * scale:
            side = min((right, left), key=lambda slope: abs(slope - analytic[k]))
            if abs(side - analytic[k]) <= min(1e-4 * scale, 0.01 * jump):
                numeric[k], replaced = side, replaced + 1
    return numeric, replaced


def weighted_sum(output: Any, grad_output: Any) -> float:
    """sum(g * y) over nested tuples of outputs: the scalar whose gradient is backward(g)."""
    if isinstance(output, (tuple, list)):
        return sum(weighted_sum(o, g) for o, g in zip(output, grad_output, strict=True)
                   if g is not None)
    return float(np.sum(np.asarray(grad_output, dtype=np.float64) * output))


def check_module_gradients(module: Any, inputs: Sequence[np.ndarray], grad_output: Any,
                           h: float = FINITE_DIFFERENCE_STEP) -> dict[str, np.ndarray]:
    """Numerical gradients of ``sum(grad_output * module(*inputs))`` with respect to every
    floating-point input (``grad.input.<position>``) and parameter (``grad.param.<name>``).

    The module must be in float64 (``module.double()``); inputs are copied, never modified.
    """
    inputs = [np.array(x, copy=True) for x in inputs]
    loss = lambda: weighted_sum(module(*inputs), grad_output)  # noqa: E731
    grads = {}
    for position, x in enumerate(inputs):
        if np.issubdtype(x.dtype, np.floating):
            grads[f"grad.input.{position}"] = numerical_gradient(loss, x, h=h)
    for name, param in module.named_parameters():
        grads[f"grad.param.{name}"] = numerical_gradient(loss, param.data, h=h)
    return grads


def check_function_gradients(forward: Callable[..., Any], inputs: Mapping[str, np.ndarray],
                             grad_output: Any,
                             h: float = FINITE_DIFFERENCE_STEP) -> dict[str, np.ndarray]:
    """Numerical gradients of ``sum(grad_output * forward(**inputs))`` w.r.t. each float input."""
    arrays = {k: np.array(v, copy=True) for k, v in inputs.items()}
    loss = lambda: weighted_sum(forward(**arrays), grad_output)  # noqa: E731
    return {name: numerical_gradient(loss, x, h=h) for name, x in arrays.items()
            if np.issubdtype(x.dtype, np.floating)}
