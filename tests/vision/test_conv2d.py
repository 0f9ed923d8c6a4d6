"""Focused tests of Conv2d and the im2col/col2im building block: a convolution worked by hand,
col2im as im2col's adjoint, 'same' padding's asymmetry, groups as separate convolutions, the
errors torch raises, initialization, state_dict keys, accumulation, dtype, verify."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compare.verify import verify
from numpy_impl.im2col import col2im, im2col, read_positions, windows
from numpy_impl.vision.conv2d import Conv2d, resolve_padding
from torch_impl.vision import conv2d as thc


def _twins(*args, **kwargs):
    torch.manual_seed(0)
    builtin = nn.Conv2d(*args, **kwargs).double()
    mine = Conv2d(*args, **kwargs).double()
    mine.load_state_dict(builtin.state_dict())
    return mine, builtin


def test_a_2x2_difference_kernel_by_hand():
    # weight [[1, 0], [0, -1]]: y[r, c] = x[r, c] - x[r+1, c+1]; on x = arange, always -5
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    conv = Conv2d(1, 1, 2).double()
    conv.load_state_dict({"weight": np.array([[[[1.0, 0.0], [0.0, -1.0]]]]),
                          "bias": np.array([0.5])})
    y = conv(x)
    np.testing.assert_array_equal(y, np.full((1, 1, 3, 3), -4.5))
    # upstream ones: pixel (r, c) collects +1 from the window it tops-left, -1 from the window
    # it bottoms-right; the corners get one of the two, inner pixels both (they cancel)
    dx = conv.backward(np.ones((1, 1, 3, 3)))
    expected = np.array([[1, 1, 1, 0], [1, 0, 0, -1], [1, 0, 0, -1], [0, -1, -1, -1]], float)
    np.testing.assert_array_equal(dx[0, 0], expected)
    # dW[i, j] = sum of the 3x3 block of x starting at (i, j); db = 9 (nine output pixels)
    np.testing.assert_array_equal(conv.weight.grad[0, 0], [[45.0, 54.0], [81.0, 90.0]])
    np.testing.assert_array_equal(conv.bias.grad, [9.0])


def test_im2col_columns_are_the_patches():
    x = np.arange(2 * 2 * 5 * 5, dtype=float).reshape(2, 2, 5, 5)
    cols = im2col(x, (2, 3), (2, 1), (1, 2), (2, 1))         # OH = 2, OW = 1
    assert cols.shape == (2 * 2 * 3, 2 * 2 * 1)
    # column (b=1, y=1, x=0), row (c=1, i=1, j=2): x[1, 1, 1*2 + 1*1, 0*1 + 2*2]
    row, column = (1 * 2 + 1) * 3 + 2, (1 * 2 + 1) * 1 + 0
    assert cols[row, column] == x[1, 1, 3, 4]
    assert np.shares_memory(windows(x, (2, 3), (2, 1), (1, 2), (2, 1)), x)  # a view, no copy


@pytest.mark.parametrize("kernel,stride,dilation", [((3, 3), (1, 1), (1, 1)),
                                                    ((3, 2), (2, 1), (1, 2)),
                                                    ((2, 2), (3, 3), (1, 1))])
def test_col2im_is_the_adjoint_of_im2col(kernel, stride, dilation):
    # <im2col(x), c> = <x, col2im(c)> for every x, c: col2im is the transpose, hence the backward
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 7))
    out = tuple((n - d * (k - 1) - 1) // s + 1
                for n, k, s, d in zip(x.shape[2:], kernel, stride, dilation, strict=True))
    cols = im2col(x, kernel, stride, dilation, out)
    c = rng.standard_normal(cols.shape)
    back = col2im(c, x.shape, kernel, stride, dilation, out)
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-12)
    # overlapping windows: a pixel read k times gets k contributions (ones in, counts out),
    # counted here the slow way, window by window
    counts = np.zeros(x.shape[2:])
    for y in range(out[0]):
        for x_ in range(out[1]):
            rows = y * stride[0] + dilation[0] * np.arange(kernel[0])
            columns = x_ * stride[1] + dilation[1] * np.arange(kernel[1])
            counts[np.ix_(rows, columns)] += 1
    ones = col2im(np.ones(cols.shape), x.shape, kernel, stride, dilation, out)
    np.testing.assert_array_equal(ones, np.broadcast_to(counts, x.shape))
    assert not read_positions(x.shape, kernel, stride, dilation, out).flags.writeable


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # torch's perf note
def test_same_padding_puts_the_odd_one_out_on_the_bottom_right():
    assert resolve_padding("same", (4, 3), (1, 1), (1, 1)) == (1, 2, 1, 1)
    assert resolve_padding("same", (3, 3), (1, 1), (2, 3)) == (2, 2, 3, 3)
    assert resolve_padding("valid", (5, 5), (2, 2), (1, 1)) == (0, 0, 0, 0)
    mine, builtin = _twins(2, 3, (4, 2), padding="same", dilation=(1, 3))
    x = np.random.default_rng(1).standard_normal((2, 2, 6, 7))
    y = mine(x)
    assert y.shape == (2, 3, 6, 7)
    np.testing.assert_allclose(y, builtin(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)


def test_stride_beyond_the_kernel_leaves_unread_pixels_without_gradient():
    mine, _ = _twins(1, 1, 2, stride=3)
    x = np.random.default_rng(2).standard_normal((1, 1, 7, 7))
    y = mine(x)
    dx = mine.backward(np.ones_like(y))
    expected = np.zeros((7, 7))
    for top in (0, 3):                                      # OH = OW = 2 windows, at 0 and 3
        for left in (0, 3):
            expected[top:top + 2, left:left + 2] = mine.weight.data[0, 0]
    np.testing.assert_array_equal(dx[0, 0], expected)       # rows/columns 2, 5, 6: never read
    assert np.all(dx[0, 0, [2, 5, 6]] == 0) and np.all(dx[0, 0, :, [2, 5, 6]] == 0)


def test_groups_are_separate_convolutions():
    mine, _ = _twins(4, 6, 3, groups=2, padding=1)
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 5))
    y = mine(x)
    for group in range(2):
        part = Conv2d(2, 3, 3, padding=1).double()
        part.load_state_dict({"weight": mine.weight.data[3 * group:3 * group + 3],
                              "bias": mine.bias.data[3 * group:3 * group + 3]})
        np.testing.assert_allclose(y[:, 3 * group:3 * group + 3],
                                   part(x[:, 2 * group:2 * group + 2]), rtol=1e-13)


def test_depthwise_matches_torch_and_channels_do_not_mix():
    mine, builtin = _twins(3, 6, 3, groups=3, bias=False)
    assert mine.weight.shape == (6, 1, 3, 3)
    x = np.random.default_rng(4).standard_normal((2, 3, 6, 6))
    x_only_channel_1 = np.zeros_like(x)
    x_only_channel_1[:, 1] = x[:, 1]
    y = mine(x_only_channel_1)
    assert np.all(y[:, [0, 1, 4, 5]] == 0) and np.all(y[:, [2, 3]] != 0)  # outputs 2, 3 see it
    np.testing.assert_allclose(mine(x), builtin(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("cls", [Conv2d, thc.Conv2d])
def test_constructor_errors_name_the_problem(cls):
    with pytest.raises(ValueError, match="not supported for strided"):
        cls(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="padding_mode 'reflect' is not supported"):
        cls(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
        cls(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="out_channels must be divisible by groups"):
        cls(4, 3, 3, groups=2)
    with pytest.raises(ValueError, match="Invalid padding string 'full'"):
        cls(2, 2, 3, padding="full")


def test_forward_errors_name_the_problem():
    conv = Conv2d(3, 2, 3).double()
    with pytest.raises(ValueError, match="to have 3 channels, but got 2 channels"):
        conv(np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="Kernel size can't be greater than actual input size"):
        conv(np.zeros((1, 3, 2, 5)))
    with pytest.raises(ValueError, match="3-D .* or 4-D"):
        conv(np.zeros((3, 5)))


def test_state_dict_and_initialization_are_torchs():
    numpy_conv = Conv2d(4, 6, (3, 2), groups=2)
    torch_conv = thc.Conv2d(4, 6, (3, 2), groups=2)
    builtin = nn.Conv2d(4, 6, (3, 2), groups=2)
    for state in (numpy_conv.state_dict(), torch_conv.state_dict()):
        assert list(state) == list(builtin.state_dict()) == ["weight", "bias"]
        assert [tuple(v.shape) for v in state.values()] == [(6, 2, 3, 2), (6,)]
    # U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = 2 * 3 * 2 = 12: a large layer's extremes
    big = Conv2d(64, 64, 3)
    bound = 1 / np.sqrt(64 * 9)
    assert big.weight.data.dtype == np.float32
    assert np.abs(big.weight.data).max() <= bound
    assert np.abs(big.weight.data).max() > 0.99 * bound
    assert abs(big.weight.data.std() - bound / np.sqrt(3)) < 0.01 * bound
    assert Conv2d(2, 2, 1, bias=False).bias is None
    assert list(Conv2d(2, 2, 1, bias=False).state_dict()) == ["weight"]


def test_gradients_accumulate_and_unbatched_input_works():
    mine, builtin = _twins(2, 3, 2, padding=1)
    rng = np.random.default_rng(5)
    x, g = rng.standard_normal((2, 4, 4)), rng.standard_normal((3, 5, 5))
    y = mine(x)
    assert y.shape == (3, 5, 5)
    dx = mine.backward(g)
    assert dx.shape == (2, 4, 4)
    once = mine.weight.grad.copy()
    mine(x)
    mine.backward(g)
    np.testing.assert_allclose(mine.weight.grad, 2 * once, rtol=1e-15)
    xt = torch.tensor(x, requires_grad=True)
    builtin(xt).backward(torch.from_numpy(g))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(once, builtin.weight.grad.numpy(), rtol=1e-12)


def test_float32_in_float32_out():
    conv = Conv2d(3, 4, 3, padding=1)
    x = np.random.default_rng(6).standard_normal((2, 3, 5, 5)).astype(np.float32)
    y = conv(x)
    dx = conv.backward(np.ones_like(y))
    assert y.dtype == dx.dtype == conv.weight.grad.dtype == conv.bias.grad.dtype == np.float32
    reference = F.conv2d(torch.from_numpy(x), torch.from_numpy(conv.weight.data),
                         torch.from_numpy(conv.bias.data), padding=1).numpy()
    np.testing.assert_allclose(y, reference, rtol=1e-5, atol=1e-6)


def test_verify_accepts_a_copy_and_catches_a_flipped_kernel():
    class MyConv2d(Conv2d):
        pass

    report = verify("conv2d", MyConv2d)
    assert report.passed, report

    class FlippedConv2d(Conv2d):  # a true convolution (kernel flipped): not torch's Conv2d
        def forward(self, x):
            self.weight.data = self.weight.data[:, :, ::-1, ::-1]
            y = super().forward(x)
            self.weight.data = self.weight.data[:, :, ::-1, ::-1]
            return y

    broken = verify("conv2d", FlippedConv2d)
    assert not broken.passed
    assert any(d.name == "out" and not d.passed for d in broken.diffs)
