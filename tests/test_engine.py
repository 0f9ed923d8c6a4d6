"""The engine itself: metrics, NaN handling, referee, finite differences, and that a wrong
backward is caught (an engine that cannot fail proves nothing)."""
import math

import numpy as np
import pytest

from compare import Tolerance, check_function_gradients, check_module_gradients, get
from compare.concept import Case, Concept, Trial, randn
from compare.report import kind_of, measure, normwise_error, referee
from compare.runner import flatten, run_case, run_concept, run_module, unflatten
from numpy_impl.layers import linear as numpy_linear
from torch_impl.layers import linear as torch_linear

TOL = Tolerance(rtol=1e-10)


def _measure(a, b, tol=TOL):
    return measure(np.asarray(a), np.asarray(b), tol, case="c", dtype="float64",
                   check="numpy-vs-torch", name="out")


def test_metrics_of_a_known_difference():
    d = _measure([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.5]])
    assert d.max_abs == 0.5
    assert d.max_rel == pytest.approx(0.5 / 4.5)
    assert d.worst_index == (1, 1) and d.worst_values == (4.0, 4.5)
    assert d.n_outside == 1 and not d.passed and not d.exact


def test_identical_is_exact_and_passes():
    d = _measure(np.arange(5.0), np.arange(5.0))
    assert d.exact and d.passed and d.max_abs == 0 and d.max_rel == 0


def test_normwise_tolerance_counts_against_the_whole_tensor():
    # 1e-12 off on an element that is ~0 is fine relative to a tensor of size ~1.
    d = _measure([1.0, 1e-12], [1.0, 0.0])
    assert d.passed and d.max_rel == pytest.approx(1e-12)


@pytest.mark.parametrize("a, b, passed", [
    ([np.nan, 1.0], [np.nan, 1.0], True),     # same NaN, same place: agree
    ([np.nan, 1.0], [0.0, 1.0], False),       # NaN on one side only
    ([1.0, 1.0], [np.inf, 1.0], False),       # inf on one side only
    ([np.inf, 1.0], [np.inf, 1.0], True),
    ([np.inf, 1.0], [-np.inf, 1.0], False),   # opposite infinities
])
def test_nan_and_inf_on_one_side_only_is_a_mismatch(a, b, passed):
    d = _measure(a, b)
    assert d.passed is passed
    if not passed:
        assert math.isinf(d.max_abs) and "one side only" in d.note


def test_shape_mismatch_fails_with_a_note():
    d = _measure(np.zeros((2, 3)), np.zeros((3, 2)))
    assert not d.passed and d.note == "shape (2, 3) vs (3, 2)"


def test_json_has_no_infinite_floats():
    d = _measure([np.nan], [1.0]).to_dict()
    assert d["max_abs"] == "inf" and d["max_rel"] == "inf"


def test_referee_names_the_twin_closer_to_float64():
    truth = np.array([1.0, 2.0, 3.0])
    r = referee(truth + 1e-7, truth + 1e-8, truth)
    assert r["closer"] == "torch"
    assert r["numpy_vs_float64"] == pytest.approx(1e-7 / 3)
    assert normwise_error(truth, truth) == 0.0


@pytest.mark.parametrize("name, kind", [
    ("out", "output"), ("out.1", "output"), ("grad.input.x", "input gradient"),
    ("grad.param.fc.weight", "parameter gradient"), ("buffer.running_var", "buffer"),
    ("inter.h", "intermediate"), ("grad.inter.h", "intermediate gradient"),
    ("step3/grad.param.w", "parameter gradient"),
])
def test_names_say_what_a_tensor_is(name, kind):
    assert kind_of(name) == kind


def test_flatten_and_unflatten_nested_outputs():
    structure = (1, (2, 3))
    leaves = dict(flatten(structure))
    assert leaves == {"out.0": 1, "out.1.0": 2, "out.1.1": 3}
    assert unflatten(structure, leaves) == structure


def test_finite_differences_of_a_known_function():
    x = np.array([0.3, -1.2, 2.0])
    grads = check_function_gradients(lambda x: np.sin(x) * x, {"x": x}, np.ones(3))
    np.testing.assert_allclose(grads["x"], np.cos(x) * x + np.sin(x), rtol=1e-8)


def test_finite_differences_of_a_module():
    layer = numpy_linear.Linear(3, 2).double()
    x, g = np.random.default_rng(0).standard_normal((4, 3)), np.ones((4, 2))
    numeric = check_module_gradients(layer, [x], g)
    layer(x)
    dx = layer.backward(g)
    np.testing.assert_allclose(numeric["grad.input.0"], dx, rtol=1e-7)
    np.testing.assert_allclose(numeric["grad.param.weight"], layer.weight.grad, rtol=1e-7)


def test_trial_cast_rounds_through_the_data_dtype():
    x = np.array([0.1, 1 / 3])
    referee_trial = Trial(dtype="float64", data_dtype="float32")
    cast = referee_trial.cast(x)
    assert cast.dtype == np.float64
    np.testing.assert_array_equal(cast, x.astype(np.float32).astype(np.float64))
    assert Trial(dtype="float32").cast(np.arange(3)).dtype == np.int64  # ints untouched


# --- a wrong backward must be caught -------------------------------------------------------
class ForgotTheTranspose(numpy_linear.Linear):
    """dx computed with the wrong matrix: a classic manual-backprop bug."""

    def backward(self, grad_output):
        super().backward(grad_output)
        return grad_output @ self.weight.data * 2.0


class BiasNotSummed(numpy_linear.Linear):
    def backward(self, grad_output):
        dx = super().backward(grad_output)
        self.bias.grad -= grad_output.sum(axis=0)      # undo the right bias gradient
        self.bias.grad += grad_output.mean(axis=0)     # ... and use the mean instead
        return dx


def _linear_case(cls):
    return Case("wrong", numpy=cls, torch=torch_linear.Linear,
                init=dict(in_features=3, out_features=2), inputs=dict(x=randn(5, 3)))


@pytest.mark.parametrize("cls, wrong", [(ForgotTheTranspose, "grad.input.x"),
                                        (BiasNotSummed, "grad.param.bias")])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_wrong_backward_fails_on_exactly_that_tensor(cls, wrong, dtype):
    concept = Concept("linear", "layers", "test", cases=[_linear_case(cls)])
    diffs = run_case(concept, concept.cases[0], dtype)
    failed = {(d.check, d.name) for d in diffs if not d.passed}
    expected = {("numpy-vs-torch", wrong)}
    if dtype == "float64":
        expected.add(("numpy-vs-fd", wrong))  # finite differences catch it independently
    assert failed == expected


def test_an_exception_in_a_twin_becomes_the_reports_error():
    class Explodes(numpy_linear.Linear):
        def forward(self, x):
            raise ValueError("boom")

    concept = Concept("linear", "layers", "test", cases=[_linear_case(Explodes)])
    report = run_concept(concept)
    assert not report.passed
    assert "ValueError: boom" in report.error and "case 'wrong', float64" in report.error


def test_backward_returning_the_wrong_number_of_grads_is_explained():
    class TwoGrads(numpy_linear.Linear):
        def backward(self, grad_output):
            dx = super().backward(grad_output)
            return dx, dx

    concept = Concept("linear", "layers", "test", cases=[_linear_case(TwoGrads)])
    report = run_concept(concept, dtypes=["float64"])
    assert "returned 2 gradient(s), expected one per floating-point input (x)" in report.error


def test_upstream_gradient_is_random_not_ones():
    outcome = run_module(_linear_case(numpy_linear.Linear), Trial(dtype="float64"))
    # with an all-ones upstream gradient, the bias gradient would be the batch size 5
    assert not np.allclose(outcome.torch["grad.param.bias"], 5.0)


def test_same_seed_same_report_other_seed_other_data():
    a = run_concept(get("linear"), dtypes=["float64"], seed=1)
    b = run_concept(get("linear"), dtypes=["float64"], seed=1)
    c = run_concept(get("linear"), dtypes=["float64"], seed=2)
    assert [d.max_abs for d in a.diffs] == [d.max_abs for d in b.diffs]
    assert not np.array_equal(a.diffs[0].b, c.diffs[0].b)


def test_float32_diffs_carry_the_referee():
    report = run_concept(get("linear"), dtypes=["float32"])
    primary = [d for d in report.diffs if d.check == "numpy-vs-torch"]
    assert primary and all(d.referee and d.referee["closer"] in {"numpy", "torch", "tie"}
                           for d in primary)
    assert all(d.referee is None for d in report.diffs if d.check != "numpy-vs-torch")


def test_a_kink_inside_the_step_is_differenced_from_its_clean_side():
    """relu at x = 3e-7 (inside the 1e-6 step): the central difference is off by half the
    jump; the left slope sees no kink and equals the analytic gradient. A wrong analytic
    gradient matches neither side and keeps the central value."""
    from compare.finite_diff import kink_resolved, numerical_gradient
    x = np.array([3e-7, 0.5, -0.7])
    g = np.array([2.0, -1.0, 3.0])
    loss = lambda: float(np.sum(g * np.maximum(x, 0.0)))  # noqa: E731
    analytic = g * (x > 0)                                 # [2, -1, 0]
    central = numerical_gradient(loss, x, np.arange(3))
    assert abs(central[0] - 2.0) > 0.1                     # the kink spoils element 0
    resolved, replaced = kink_resolved(loss, x, np.arange(3), analytic, central)
    assert replaced == 1
    np.testing.assert_allclose(resolved, analytic, atol=1e-8)
    wrong = analytic * 1.25
    kept, replaced = kink_resolved(loss, x, np.arange(3), wrong, central)
    assert replaced == 0 and np.array_equal(kept, central)


def test_a_small_kink_next_to_large_gradients_is_resolved_too():
    """A kink whose slope jump (1.4e-3) is small next to the tensor's scale (3), as at cnn
    seed 103: still resolved, since the clean side matches the analytic gradient to far better
    than 1 % of the jump. An analytic gradient off that side by 1e-5 (3.3e-6 of the scale)
    stays off the numeric value by more than the fd bound, whichever value is kept."""
    from compare.finite_diff import kink_resolved, numerical_gradient
    x = np.array([3e-7, 0.5, -0.7])
    g = np.array([2e-3, -1.0, 3.0])
    loss = lambda: float(np.sum(g * np.maximum(x, 0.0)) + 1.5 * x[2] ** 2)  # noqa: E731
    analytic = g * (x > 0) + np.array([0.0, 0.0, 3.0 * x[2]])
    central = numerical_gradient(loss, x, np.arange(3))
    assert abs(central[0] - 2e-3) > 1e-6 * 3.0              # beyond the fd bound
    resolved, replaced = kink_resolved(loss, x, np.arange(3), analytic, central)
    assert replaced == 1
    np.testing.assert_allclose(resolved, analytic, atol=1e-9)
    off = analytic + np.array([1e-5, 0.0, 0.0])
    kept, _ = kink_resolved(loss, x, np.arange(3), off, central)
    assert abs(kept[0] - off[0]) > 1e-6 * 3.0


def test_a_case_runs_only_in_the_dtypes_it_declares():
    import dataclasses

    from compare.verify import verify
    concept = get("linear")
    case = dataclasses.replace(concept.cases[0], dtypes=("float64",))
    only64 = dataclasses.replace(concept, cases=[case])
    report = run_concept(only64)
    assert report.passed and {d.dtype for d in report.diffs} == {"float64"}
    mine = verify(only64, numpy_linear.Linear, dtype="float32")
    assert mine.skipped == [(case.name, "the case runs in float64 only")] and not mine.diffs
