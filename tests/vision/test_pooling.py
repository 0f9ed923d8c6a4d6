"""Focused tests of MaxPool2d and AvgPool2d: answers worked by hand, where max pooling sends
the gradient at ties (torch's first maximum, and a wrong choice is caught), -inf padding,
output sizes with ceil_mode against torch, every divisor rule, errors, dtype, verify."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compare.verify import verify
from numpy_impl.vision.pooling import AvgPool2d, MaxPool2d, pool_output_size
from torch_impl.vision import pooling as thp


def test_max_pool_by_hand():
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    pool = MaxPool2d(2, return_indices=True)
    y, indices = pool(x)
    np.testing.assert_array_equal(y[0, 0], [[5.0, 7.0], [13.0, 15.0]])  # bottom-right cells
    np.testing.assert_array_equal(indices[0, 0], [[5, 7], [13, 15]])
    assert indices.dtype == np.int64
    dx = pool.backward((np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), None))
    expected = np.zeros((4, 4))
    expected[1, 1], expected[1, 3], expected[3, 1], expected[3, 3] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_ties_go_to_the_first_maximum_in_row_major_order_as_torch():
    # a constant plane, overlapping 2x2 windows with stride 1: every window's winner is its
    # top-left cell, so cell (r, c) collects the gradient of window (r, c) only
    x = np.full((1, 1, 4, 4), 3.0)
    g = np.random.default_rng(0).standard_normal((1, 1, 3, 3))
    pool = MaxPool2d(2, stride=1, return_indices=True)
    _, indices = pool(x)
    dx = pool.backward((g, None))
    expected = np.zeros((4, 4))
    expected[:3, :3] = g[0, 0]
    np.testing.assert_array_equal(dx[0, 0], expected)
    np.testing.assert_array_equal(indices[0, 0], np.arange(16).reshape(4, 4)[:3, :3])
    xt = torch.tensor(x, requires_grad=True)
    yt, it = F.max_pool2d(xt, 2, stride=1, return_indices=True)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_array_equal(dx, xt.grad.numpy())        # exactly where torch sends it
    np.testing.assert_array_equal(indices, it.numpy())


def test_a_tie_in_the_middle_of_the_window_on_integer_planes():
    # rows tie at 2 in row-major positions (0, 1) and (1, 0): the first one, (0, 1), wins
    x = np.array([[[[0.0, 2.0], [2.0, 1.0]]]])
    pool = MaxPool2d(2, return_indices=True)
    _, indices = pool(x)
    assert indices.item() == 1
    np.testing.assert_array_equal(pool.backward((np.array([[[[5.0]]]]), None))[0, 0],
                                  [[0.0, 5.0], [0.0, 0.0]])
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(2, 3, 7, 7)).astype(np.float64)
    g = rng.standard_normal((2, 3, 4, 4))
    pool = MaxPool2d(3, stride=2, padding=1)
    pool(x)
    xt = torch.tensor(x, requires_grad=True)
    F.max_pool2d(xt, 3, stride=2, padding=1).backward(torch.from_numpy(g))
    np.testing.assert_allclose(pool.backward(g), xt.grad.numpy(), rtol=1e-15)


def test_verify_catches_a_max_pool_that_sends_ties_to_the_last_maximum():
    class MyMaxPool2d(MaxPool2d):
        pass

    assert verify("pooling", MyMaxPool2d).passed

    class LastMaxPool2d(MaxPool2d):
        """Right on every input without ties; at a tie, picks the LAST maximum."""

        def forward(self, x):
            cols = self._columns(x, self.dilation, fill=-np.inf)
            last = cols.shape[0] - 1 - cols[::-1].argmax(axis=0)
            self._winner = last
            y = self._output(cols[last, np.arange(cols.shape[1])])
            return (y, self._output(self._flat_indices())) if self.return_indices else y

    report = verify("pooling:MaxPool2d", LastMaxPool2d)
    failed_cases = {d.case for d in report.diffs if not d.passed}
    assert failed_cases == {"max-ties-constant", "max-ties-integers", "max-ties-ceil-dilated"}
    assert all(d.passed for d in report.diffs if d.name == "out.0")  # values agree, routing not


def test_padding_is_minus_infinity_for_max_and_zero_for_average():
    x = np.full((1, 1, 3, 3), -5.0)
    y, indices = MaxPool2d(3, stride=1, padding=1, return_indices=True)(x)
    np.testing.assert_array_equal(y, np.full((1, 1, 3, 3), -5.0))  # not 0 from the padding
    assert indices.min() >= 0 and indices.max() <= 8               # always a real cell
    y = AvgPool2d(3, stride=1, padding=1)(x)
    assert y[0, 0, 0, 0] == -5.0 * 4 / 9                            # 4 real cells, divisor 9


@pytest.mark.parametrize("ceil_mode", [False, True])
def test_output_sizes_match_torch(ceil_mode):
    for size in range(4, 10):
        for kernel in (2, 3):
            for stride in (1, 2, 3):
                for padding in range(kernel // 2 + 1):
                    for dilation in (1, 2):
                        if dilation * (kernel - 1) + 1 > size + 2 * padding:
                            continue
                        out = torch.nn.functional.max_pool2d(
                            torch.zeros(1, 1, size, size), kernel, stride, padding, dilation,
                            ceil_mode=ceil_mode).shape[-1]
                        assert pool_output_size(size, kernel, stride, padding, dilation,
                                                ceil_mode) == out


def test_average_divisors_by_hand():
    ones = np.ones((1, 1, 4, 4))
    # count_include_pad (the default): windows at the border hold padding zeros, divisor 9
    y = AvgPool2d(3, stride=2, padding=1)(ones)
    np.testing.assert_allclose(y[0, 0], [[4 / 9, 6 / 9], [6 / 9, 9 / 9]], rtol=1e-15)
    # count_include_pad=False: divide by the real cells only, so the mean of ones is one
    y = AvgPool2d(3, stride=2, padding=1, count_include_pad=False)(ones)
    np.testing.assert_array_equal(y, np.ones((1, 1, 2, 2)))
    # ceil_mode overhang is never counted: 5 wide, kernel 2 stride 2 -> the last window holds
    # one real cell and divides by 1, even with count_include_pad
    y = AvgPool2d(2, ceil_mode=True)(np.ones((1, 1, 5, 5)))
    np.testing.assert_array_equal(y, np.ones((1, 1, 3, 3)))
    # divisor_override: the sum of the window divided by the given number
    y = AvgPool2d(2, divisor_override=3)(ones)
    np.testing.assert_allclose(y, np.full((1, 1, 2, 2), 4 / 3), rtol=1e-15)


@pytest.mark.parametrize("init", [dict(kernel_size=3, stride=2, padding=1, ceil_mode=True),
                                  dict(kernel_size=3, stride=2, padding=1, ceil_mode=True,
                                       count_include_pad=False),
                                  dict(kernel_size=(2, 3), stride=(3, 2), padding=(1, 1),
                                       ceil_mode=True)])
def test_average_pool_and_its_gradient_match_torch(init):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 8, 7))
    pool = AvgPool2d(**init)
    y = pool(x)
    g = rng.standard_normal(y.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = nn.AvgPool2d(**init)(xt)
    yt.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-14)
    np.testing.assert_allclose(pool.backward(g), xt.grad.numpy(), rtol=1e-14)


@pytest.mark.parametrize("module", [MaxPool2d, thp.MaxPool2d, AvgPool2d, thp.AvgPool2d])
def test_errors_name_the_problem(module):
    array = np.zeros if module in (MaxPool2d, AvgPool2d) else torch.zeros
    with pytest.raises(ValueError, match="pad should be at most half of effective kernel size"):
        module(2, padding=2)(array((1, 1, 6, 6)))
    with pytest.raises(ValueError, match="Output size is too small"):
        module(4)(array((1, 1, 3, 3)))
    if module in (AvgPool2d, thp.AvgPool2d):
        with pytest.raises(ValueError, match="divisor must be not zero"):
            module(2, divisor_override=0)


def test_unbatched_float32_stays_float32():
    x = np.random.default_rng(3).standard_normal((3, 6, 6)).astype(np.float32)
    for pool in (MaxPool2d(2), AvgPool2d(3, stride=2, padding=1, count_include_pad=False)):
        y = pool(x)
        dx = pool.backward(np.ones_like(y))
        assert y.ndim == 3 and dx.shape == x.shape
        assert y.dtype == dx.dtype == np.float32
    assert MaxPool2d(3).stride == (3, 3) and AvgPool2d((2, 3)).stride == (2, 3)  # default


def test_overlapping_windows_sum_their_gradients():
    # average 2x2 windows with stride 1 on 3x3: the centre sits in all four windows
    pool = AvgPool2d(2, stride=1)
    pool(np.zeros((1, 1, 3, 3)))
    dx = pool.backward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(dx[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5],
                                             [0.25, 0.5, 0.25]])
