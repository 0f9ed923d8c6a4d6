"""Deliberately broken backward passes, the classic manual-backprop mistakes: verify must fail,
name the wrong tensor, and its diagnosis must name the pattern."""
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from compare.verify import load, verify
from numpy_impl.layers import activations, batchnorm, dropout, embedding, layernorm, linear
from numpy_impl.layers import losses as numpy_losses
from torch_impl.layers import linear as torch_linear

ROOT = Path(__file__).resolve().parent.parent


class BiasMeanNotSum(linear.Linear):
    def backward(self, grad_output):
        dx = super().backward(grad_output)
        if self.bias is not None:  # replace the right sum over rows by a mean
            rows = grad_output.reshape(-1, grad_output.shape[-1])
            self.bias.grad += rows.mean(axis=0) - rows.sum(axis=0)
        return dx


class InputGradSignFlipped(linear.Linear):
    def backward(self, grad_output):
        return -super().backward(grad_output)


class WeightGradTransposed(linear.Linear):
    def backward(self, grad_output):
        dx = super().backward(grad_output)
        self.weight.grad = self.weight.grad.T.copy()  # (in, out) instead of torch's (out, in)
        return dx


class RepeatedIndicesOverwrite(embedding.Embedding):
    def backward(self, grad_output):
        indices, shape = self._cache
        dweight = np.zeros(shape, grad_output.dtype)
        dweight[indices.reshape(-1)] += grad_output.reshape(-1, shape[1])  # buffered: overwrites
        if self.padding_idx is not None:
            dweight[self.padding_idx] = 0
        self.weight.grad += dweight


class PaddingRowGetsGradient(embedding.Embedding):
    def backward(self, grad_output):
        indices, shape = self._cache
        dweight = np.zeros(shape, grad_output.dtype)
        np.add.at(dweight, indices.reshape(-1), grad_output.reshape(-1, shape[1]))
        self.weight.grad += dweight  # forgot: the padding row must get no gradient


class MSEForgotTheTwo(numpy_losses.MSELoss):
    def backward(self, grad_output):
        dx, dtarget = super().backward(grad_output)
        return dx / 2, dtarget / 2  # d(d^2)/dd = 2d, not d


class DropoutForgotTheScale(dropout.Dropout):
    def backward(self, grad_output):
        if self._cache is None:
            return grad_output
        mask, _ = self._cache
        return grad_output * mask  # forgot 1 / (1 - p)


class ReluGradientOneAtZero(activations.ReLU):
    def backward(self, grad_output):
        return np.where(self._x >= 0, grad_output, 0)  # torch's subgradient at 0 is 0


class SoftmaxWithoutTheMaxShift(activations.Softmax):
    def forward(self, x):
        self._dim = self.dim
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(x)  # overflows for logits of 1e4
            self._y = e / e.sum(axis=self._dim, keepdims=True)
        return self._y


class GammaSummedOverTheWrongAxis(layernorm.LayerNorm):
    def backward(self, grad_output):
        dx = super().backward(grad_output)
        if self.weight is not None:
            xhat = self._cache[0]
            self.weight.grad = (grad_output * xhat).sum(axis=-1)  # over features, not samples
        return dx


class BatchNormBetaMean(batchnorm.BatchNorm1d):
    def backward(self, grad_output):
        dx = super().backward(grad_output)
        if self.bias is not None:
            axes = self._cache[2]
            self.bias.grad += grad_output.mean(axis=axes) - grad_output.sum(axis=axes)
        return dx


def ce_forward(input, target, weight=None, ignore_index=-100, reduction="mean",
               label_smoothing=0.0):
    logp = activations.log_softmax(input, 1)
    loss, cache = numpy_losses.nll_forward(logp, target, weight, ignore_index, reduction,
                                           label_smoothing)
    return loss, (cache, logp, target == ignore_index)


def ce_backward_ignored_not_masked(grad_output, cache):
    nll_cache, logp, ignored = cache
    dx = activations.log_softmax_backward(numpy_losses.nll_backward(grad_output, nll_cache),
                                          logp, 1)
    rows = np.expand_dims(ignored, 1) & np.ones(dx.shape, bool)
    dx[rows] = 0.1 * np.exp(logp)[rows]  # ignored positions leak a gradient
    return dx


class LinearFunctionBiasMean(torch.autograd.Function):
    """A torch user's custom backward with the mean-instead-of-sum bug."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return x @ weight.T + bias

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        rows_g, rows_x = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
        return grad @ weight, rows_g.T @ rows_x, rows_g.mean(0)


class TorchLinearCustomBackward(torch_linear.Linear):
    def forward(self, x):
        if self.bias is None:
            return x @ self.weight.T
        return LinearFunctionBiasMean.apply(x, self.weight, self.bias)


BROKEN = [
    # (concept, implementation, the wrong tensor, words the diagnosis must contain)
    ("linear", BiasMeanNotSum, "grad.param.bias", "divided by 4 (the batch size"),
    ("linear", InputGradSignFlipped, "grad.input.x", "sign flipped"),
    ("linear", WeightGradTransposed, "grad.param.weight", "transposed"),
    ("linear", TorchLinearCustomBackward, "grad.param.bias", "divided by 4 (the batch size"),
    ("embedding", RepeatedIndicesOverwrite, "grad.param.weight", "index repeats"),
    ("embedding", PaddingRowGetsGradient, "grad.param.weight", "padding row"),
    ("losses", MSEForgotTheTwo, "grad.input.input", "half the reference"),
    ("losses:CrossEntropyLoss", (ce_forward, ce_backward_ignored_not_masked),
     "grad.input.input", "wrong only at ignored positions"),
    ("dropout", DropoutForgotTheScale, "grad.input.x", "the 1/(1 - p) scaling missing"),
    ("activations", ReluGradientOneAtZero, "grad.input.x", "wrong only where x is exactly 0"),
    ("activations", SoftmaxWithoutTheMaxShift, "out", "NaN or inf introduced"),
    ("layernorm", GammaSummedOverTheWrongAxis, "grad.param.weight", "reduction over the wrong"),
    ("batchnorm", BatchNormBetaMean, "grad.param.bias", "(the batch size"),
]


# Finite differences check a NumPy backward on their own -- but not at ReLU's kink, not where
# the padding row's gradient is a rule rather than a derivative, not a torch backward, and not
# a forward that goes NaN (the finite differences are NaN too).
CAUGHT_BY_FINITE_DIFFERENCES = {BiasMeanNotSum, InputGradSignFlipped, WeightGradTransposed,
                                RepeatedIndicesOverwrite, MSEForgotTheTwo, DropoutForgotTheScale,
                                GammaSummedOverTheWrongAxis, BatchNormBetaMean}


@pytest.mark.parametrize("concept, impl, wrong, words", BROKEN,
                         ids=[getattr(b[1], "__name__", "ce_pair") for b in BROKEN])
def test_verify_names_the_wrong_tensor_and_the_pattern(concept, impl, wrong, words):
    report = verify(concept, impl)
    assert not report.passed and not report.error, report.error
    failed = [d for d in report.failures if d.check in ("yours-vs-numpy", "yours-vs-torch")]
    assert wrong in {d.name for d in failed}
    first = next(d for d in failed if d.name == wrong)
    assert words in first.diagnosis, first.diagnosis
    assert "worst at" in first.diagnosis or "elements" in first.diagnosis
    if impl in CAUGHT_BY_FINITE_DIFFERENCES:  # independently of both references
        assert any(d.check == "yours-vs-fd" and d.name == wrong for d in report.failures)
    assert words in report.table()  # the diagnosis is printed under the failing row


def test_only_the_broken_tensor_fails():
    report = verify("linear", BiasMeanNotSum)
    assert {d.name for d in report.failures} == {"grad.param.bias"}


def test_the_first_point_of_divergence_in_the_mlp(tmp_path):
    source = (ROOT / "numpy_impl" / "layers" / "mlp.py").read_text()
    right = "dbnvar = -0.5 * (v[\"bnvar\"] + self.eps) ** -1.5 * dbnvar_inv"
    assert right in source
    path = tmp_path / "my_mlp.py"
    path.write_text(source.replace(right, right.replace("-0.5", "-1.5")))  # wrong derivative
    report = verify("mlp", load(f"{path}:CharMLP"))
    assert not report.passed
    tables = {(t["case"], t["dtype"]): t for t in report.divergence()}
    train = tables[("train", "float64")]
    assert train["first_forward"] is None  # the forward pass is right
    assert train["first_backward"] == "bnvar"  # the bug, found walking back from the loss
    text = report.table()
    assert "first point of divergence: case 'train', float64 (yours-vs-torch)" in text
    assert "the backward pass first departs at: bnvar (walking back from the output)" in text
    shutil.rmtree(tmp_path)
