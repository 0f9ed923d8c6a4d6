"""Diagnoses name the right culprit: each pattern once from numbers, once through verify."""
import numpy as np
import torch

from compare.verify import verify
from compare.verify.diagnose import Context, diagnose
from numpy_impl.language import micrograd
from numpy_impl.layers import activations

EMPTY = Context()


def _say(name, yours, reference, context=EMPTY):
    reference = np.asarray(reference, dtype=np.float64)
    return diagnose(name, np.asarray(yours), reference, context,
                    1e-10 * float(np.max(np.abs(reference))))


def test_a_division_by_the_batch_size_names_the_number_first():
    x = np.random.default_rng(0).standard_normal((4, 3))
    ref = np.random.default_rng(1).standard_normal(2)
    s = _say("grad.param.bias", ref / 4, ref, Context(inputs={"x": x}))
    assert s.startswith("yours is the reference divided by 4 (the batch size of x)")


def test_a_division_by_the_rows_of_a_4d_input_is_named_as_rows():
    # x (1, 4, 3, 4): its rows, 1·4·3 = 12, equal the spatial size H·W = 3·4; the bias
    # gradient (4,) is a sum over the rows, so the rows are the culprit
    x = np.random.default_rng(0).standard_normal((1, 4, 3, 4))
    ref = np.random.default_rng(1).standard_normal(4)
    s = _say("grad.param.bias", ref / 12, ref, Context(inputs={"x": x}))
    assert "divided by 12 (the number of rows of x, all dims but the last: 1·4·3)" in s
    assert "H·W" not in s


def test_an_extra_size_one_axis_is_named_as_such():
    ref = np.random.default_rng(0).standard_normal((4, 3))
    s = _say("out", ref[:, None, :], ref)
    assert s.startswith("an extra size-1 axis (keepdims=True, or a missing squeeze?): yours "
                        "is (4, 1, 3), the reference (4, 3)")
    assert "reduction" not in s
    s = _say("out", ref, ref[:, None, :])
    assert s.startswith("a size-1 axis missing")


def test_an_ignored_upstream_gradient_is_named():
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    s = _say("grad.input.x", (x > 0) * 1.0, g * (x > 0), Context(inputs={"x": x},
                                                                  upstream={"out": g}))
    assert s.startswith("yours times the upstream gradient of out gives the reference: the "
                        "upstream gradient was ignored (taken as 1)")
    dx = rng.standard_normal((3, 4))
    s = _say("grad.input.input", dx, 0.37 * dx, Context(inputs={"input": x},
                                                        upstream={"out": np.array(0.37)}))
    assert s.startswith("yours is the reference divided by the upstream gradient of out (0.37)")


def test_assignment_where_contributions_must_add_overlapping_windows():
    # a 3x3 max-pool with stride 1 on a 4x4 input: a cell that wins two windows gets both
    # gradients; written with =, it keeps the last one only
    rng = np.random.default_rng(0)
    reference = rng.standard_normal((4, 4))
    wins = np.zeros((4, 4), dtype=int)
    wins[1, 1], wins[2, 2], wins[0, 3] = 2, 3, 1
    yours = reference.copy()
    yours[1, 1] -= 0.7
    yours[2, 2] += 0.4
    s = _say("grad.input.x", yours, reference,
             Context(contributions={"grad.input.x": wins}))
    assert s.startswith("wrong only where several contributions meet (2 of the 2 elements "
                        "that receive more than one, up to 3): a gradient assigned with = "
                        "where the contributions must add up (+=)")


class OverwritingValue(micrograd.Value):
    """micrograd's Value with a classic bug: a sum's backward assigns instead of adding."""

    def __add__(self, other):
        other = other if isinstance(other, micrograd.Value) else OverwritingValue(
            type(self.data)(other))
        out = OverwritingValue(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad = out.grad   # = where a node used twice needs +=
            other.grad = out.grad
        out._backward = _backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, micrograd.Value) else OverwritingValue(
            type(self.data)(other))
        return _as(super().__mul__(other))

    def __pow__(self, other):
        return _as(super().__pow__(other))

    def relu(self):
        return _as(super().relu())


def _as(value):
    value.__class__ = OverwritingValue
    return value


def test_assignment_where_contributions_must_add_in_a_scalar_graph():
    report = verify("micrograd:Value", OverwritingValue, cases=["sanity"])
    node_grad = next(d for d in report.failures
                     if d.check == "yours-vs-torch" and d.name == "node.grad")
    assert "which is used" in node_grad.diagnosis
    assert "a gradient assigned with = where the contributions must add up (+=)" \
        in node_grad.diagnosis


class ReluInPlace(activations.ReLU):
    def forward(self, x):
        self._x = x.copy()
        np.maximum(x, 0, out=x)  # right values, but the caller's array is overwritten
        return x


def test_a_forward_that_modifies_its_input_in_place_is_named():
    report = verify("activations:ReLU", ReluInPlace)
    failing = {(d.check, d.name): d for d in report.failures}
    modified = failing[("yours-vs-torch", "input.x")]
    assert modified.diagnosis.startswith("your forward modified its input x in place")
    assert ("yours-vs-torch", "out") not in failing  # the values themselves are right


def test_an_ignored_upstream_gradient_through_verify():
    report = verify("linear", torch.nn.Linear)  # control: the built-in itself agrees
    assert report.passed
    report = verify("activations:ReLU", _ReluIgnoringUpstream)
    grads = [d for d in report.failures if d.name == "grad.input.x"
             and d.check == "yours-vs-torch"]
    assert grads and "the upstream gradient was ignored" in grads[0].diagnosis


class _ReluIgnoringUpstream(activations.ReLU):
    def backward(self, grad_output):
        return super().backward(np.ones_like(grad_output))
