"""Focused tests for gradient clipping: known numbers, torch's refusals and edge cases, a
user's function through verify (a correct copy passes, a broken one is named)."""
from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from compare.verify import load, verify
from numpy_impl import Parameter
from numpy_impl.training.grad_clipping import clip_grad_norm_, clip_grad_value_, get_total_norm
from torch_impl.training import grad_clipping as torch_twin

ROOT = Path(__file__).resolve().parents[2]


def _params(*grads: list[float]) -> list[Parameter]:
    params = []
    for g in grads:
        p = Parameter(np.zeros(len(g)))
        p.grad = np.array(g, dtype=np.float64)
        params.append(p)
    return params


def test_norm_3_4_is_5_and_clipping_scales_to_max_norm():
    params = _params([3.0], [4.0])
    total = clip_grad_norm_(params, max_norm=1.0)
    assert float(total) == 5.0                                  # the norm before clipping
    coef = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose([params[0].grad[0], params[1].grad[0]], [3 * coef, 4 * coef],
                               rtol=1e-15)
    assert math.hypot(params[0].grad[0], params[1].grad[0]) < 1.0


def test_small_gradients_are_not_scaled_up():
    params = _params([0.3, -0.1], [0.2])
    total = clip_grad_norm_(params, max_norm=10.0)
    assert float(total) == pytest.approx(math.sqrt(0.14), rel=1e-15)
    np.testing.assert_array_equal(params[0].grad, [0.3, -0.1])  # multiplied by exactly 1
    np.testing.assert_array_equal(params[1].grad, [0.2])


@pytest.mark.parametrize("norm_type, expected", [
    (1.0, 1 + 2 + 3 + 4), (math.inf, 4.0), (-math.inf, 1.0),
    (0.0, 2.0),  # order 0 counts nonzeros twice: 2 nonzero per-tensor norms, not 4 elements
    (3.0, (1 + 8 + 27 + 64) ** (1 / 3)),
])
def test_total_norm_of_every_order(norm_type, expected):
    params = _params([1.0, -2.0], [3.0, -4.0])
    assert float(clip_grad_norm_(params, 1e9, norm_type)) == pytest.approx(expected, rel=1e-14)


def test_nonfinite_norm_is_refused_only_when_asked():
    params = _params([1.0, np.nan])
    with pytest.raises(RuntimeError, match="non-finite, so it cannot be clipped"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(params[0].grad, [1.0, np.nan])  # untouched by the refusal
    # torch raises the same error
    t = torch.zeros(2, requires_grad=True)
    t.grad = torch.tensor([1.0, float("nan")])
    with pytest.raises(RuntimeError, match="non-finite, so it cannot be clipped"):
        torch.nn.utils.clip_grad_norm_([t], 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="non-finite, so it cannot be clipped"):
        torch_twin.clip_grad_norm_([t], 1.0, error_if_nonfinite=True)
    # without the flag: scaled by the NaN coefficient anyway
    total = clip_grad_norm_(params, 1.0)
    assert np.isnan(total) and np.isnan(params[0].grad).all()


def test_no_gradients_at_all_give_zero():
    p = Parameter(np.ones(3))
    p.grad = None
    assert float(clip_grad_norm_([p], 1.0)) == 0.0
    assert float(get_total_norm([])) == 0.0
    assert float(torch.nn.utils.clip_grad_norm_([torch.ones(3, requires_grad=True)], 1.0)) == 0


def test_single_parameter_and_float32_stay_float32():
    p = Parameter(np.zeros(4, dtype=np.float32))
    p.grad = np.full(4, 2.0, dtype=np.float32)
    total = clip_grad_norm_(p, 1.0)
    assert total.dtype == np.float32 and p.grad.dtype == np.float32
    assert float(total) == 4.0
    np.testing.assert_allclose(p.grad, 0.5 / (1 + 2.5e-7), rtol=1e-6)


def test_clip_grad_value_clamps_elementwise_in_place():
    params = _params([-3.0, -0.2, 0.0, 0.4, 2.0])
    grad = params[0].grad
    assert clip_grad_value_(params, 0.5) is None
    assert params[0].grad is grad                               # in place
    np.testing.assert_array_equal(grad, [-0.5, -0.2, 0.0, 0.4, 0.5])


def _copy(tmp_path: Path, text: str | None = None) -> Path:
    path = tmp_path / "my_clipping.py"
    shutil.copy(ROOT / "numpy_impl" / "training" / "grad_clipping.py", path)
    if text is not None:
        path.write_text(path.read_text().replace(*text))
    return path


def test_verify_a_users_clip_grad_norm(tmp_path):
    good = load(f"{_copy(tmp_path)}:clip_grad_norm_")
    assert verify("grad_clipping:clip_grad_norm_", good).passed
    broken = _copy(tmp_path, ("np.minimum(clip_coef, 1.0)", "clip_coef"))  # scales up too
    report = verify("grad_clipping:clip_grad_norm_", load(f"{broken}:clip_grad_norm_"))
    assert not report.passed
    failing = {(d.case, d.name) for d in report.diffs if not d.passed}
    assert ("norm-2-inactive", "grad.0") in failing              # small grads blown up
    assert not any(case == "norm-2-clips" for case, _ in failing)  # clipping itself is right


def test_verify_a_users_torch_clip_grad_value(tmp_path):
    path = tmp_path / "my_torch_clipping.py"
    shutil.copy(ROOT / "torch_impl" / "training" / "grad_clipping.py", path)
    assert verify("grad_clipping:clip_grad_value_", load(f"{path}:clip_grad_value_")).passed
