"""Focused tests of the WaveNet twins: Conv1d by hand and against F.conv1d, causality,
FlattenConsecutive, BatchNorm over dims (0, 1), the lecture's model and its parameter count,
the receptive field shared by the hierarchical model and the dilated causal stack, training
parity, the --train demo, and verify with deliberately broken copies."""
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compare import registry
from compare.concept import Trial
from compare.sequence import wavenet as compare_wavenet
from compare.verify import load, verify
from numpy_impl import ModuleList
from numpy_impl.im2col import read_positions
from numpy_impl.sequence import wavenet as npw
from torch_impl.sequence import wavenet as thw

ROOT = Path(__file__).resolve().parents[2]


# --- Conv1d ---------------------------------------------------------------------------------------
def test_conv1d_by_hand_dilation_stride_and_the_gradient_of_overlapping_windows():
    conv = npw.Conv1d(1, 1, 2).double()
    conv.load_state_dict({"weight": [[[1.0, -1.0]]], "bias": [0.5]})
    x = np.array([[[1.0, 2.0, 4.0, 8.0]]])                          # (B=1, C=1, L=4)
    np.testing.assert_array_equal(conv(x), [[[-0.5, -1.5, -3.5]]])  # x_t - x_{t+1} + 0.5
    # every inner x_t sits in two windows: once under +1, once under -1
    np.testing.assert_array_equal(conv.backward(np.ones((1, 1, 3))), [[[1.0, 0.0, 0.0, -1.0]]])
    np.testing.assert_array_equal(conv.weight.grad, [[[1 + 2 + 4, 2 + 4 + 8]]])
    np.testing.assert_array_equal(conv.bias.grad, [3.0])
    dilated = npw.Conv1d(1, 1, 2, dilation=2, stride=2, bias=False).double()
    dilated.load_state_dict({"weight": [[[1.0, 10.0]]]})
    x = np.arange(1.0, 8.0)[None, None]                               # 1 .. 7
    np.testing.assert_array_equal(dilated(x), [[[1 + 30, 3 + 50, 5 + 70]]])  # x_2t + 10 x_2t+2


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize("init", [
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, dilation=2, groups=2),
    dict(in_channels=3, out_channels=3, kernel_size=4, padding="same", groups=3, bias=False),
])
def test_conv1d_loads_an_nn_conv1d_state_dict_and_matches_f_conv1d(init):
    torch.manual_seed(0)
    reference = nn.Conv1d(**init).double()
    conv = npw.Conv1d(**init).double()
    conv.load_state_dict(reference.state_dict())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, init["in_channels"], 13))
    xt = torch.tensor(x, requires_grad=True)
    y_ref = F.conv1d(xt, reference.weight, reference.bias, reference.stride,
                     "same" if init.get("padding") == "same" else reference.padding,
                     reference.dilation, reference.groups)
    g = rng.standard_normal(tuple(y_ref.shape))
    y_ref.backward(torch.tensor(g))
    np.testing.assert_allclose(conv(x), y_ref.detach().numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(conv.backward(g), xt.grad.numpy(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(conv.weight.grad, reference.weight.grad.numpy(), rtol=1e-13,
                               atol=1e-13)


def test_conv1d_init_names_and_errors_are_torchs():
    conv = npw.Conv1d(4, 8, 3)
    bound = 1 / np.sqrt(4 * 3)
    assert conv.weight.data.dtype == np.float32 and conv.weight.shape == (8, 4, 3)
    assert bound * 0.9 < np.abs(conv.weight.data).max() <= bound
    assert list(conv.state_dict()) == list(nn.Conv1d(4, 8, 3).state_dict())
    for cls in (npw.Conv1d, thw.Conv1d):
        with pytest.raises(ValueError, match="in_channels must be divisible by groups"):
            cls(3, 4, 2, groups=2)
        with pytest.raises(ValueError, match="not supported for strided convolutions"):
            cls(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="to have 4 channels, but got 3 channels"):
        npw.Conv1d(4, 2, 3)(np.zeros((1, 3, 5), np.float32))
    with pytest.raises(ValueError, match="Kernel size can't be greater than actual input size"):
        npw.Conv1d(1, 1, 5)(np.zeros((1, 1, 3), np.float32))


def test_col2im_scatter_index_is_shared_with_conv2d():
    """The 1-D convolution reuses numpy_impl.im2col: its geometry is a 2-D one of height 1."""
    conv = npw.Conv1d(2, 3, 3, dilation=2).double()
    conv(np.zeros((2, 2, 9)))
    read_positions.cache_clear()
    conv.backward(np.ones((2, 3, 5)))
    assert read_positions.cache_info().misses == 1


@pytest.mark.parametrize("kernel, dilation", [(2, 1), (2, 4), (3, 2)])
def test_causal_conv_output_t_reads_exactly_the_window_ending_at_t(kernel, dilation):
    conv = npw.CausalConv1d(2, 3, kernel, dilation=dilation).double()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 2, 20))
    y = conv(x)
    assert y.shape == (1, 3, 20)
    span = (kernel - 1) * dilation + 1
    for j in (0, 7, 19):                                             # perturb input position j
        x2 = x.copy()
        x2[0, :, j] += 1.0
        changed = np.flatnonzero(np.abs(conv(x2) - y).max(axis=(0, 1)) > 0)
        reads_j = [t for t in range(20) if 0 <= t - j < span and (t - j) % dilation == 0]
        assert changed.tolist() == reads_j                          # never a future position


# --- the lecture's layers -------------------------------------------------------------------------
def test_flatten_consecutive_puts_neighbours_side_by_side_earliest_first():
    x = np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3)          # (B, T, C)
    flat = npw.FlattenConsecutive(2)
    y = flat(x)
    assert y.shape == (2, 2, 6)
    np.testing.assert_array_equal(y[1, 1], np.concatenate([x[1, 2], x[1, 3]]))
    np.testing.assert_array_equal(flat.backward(y), x)              # a reshape, undone
    assert npw.FlattenConsecutive(4)(x).shape == (2, 12)            # T = n: the time axis goes
    torch_y = thw.FlattenConsecutive(2)(torch.from_numpy(x))
    np.testing.assert_array_equal(torch_y.numpy(), y)
    with pytest.raises(ValueError, match="length divisible by 3"):
        npw.FlattenConsecutive(3)(x)


def test_batchnorm_over_dims_0_and_1_as_the_lecture_fixed_it():
    rng = np.random.default_rng(2)
    x = 3.0 + 2.0 * rng.standard_normal((5, 4, 6))                   # (B, T, C)
    bn = npw.ChannelsLastBatchNorm1d(6).double()
    y = bn(x)
    np.testing.assert_allclose(y.mean(axis=(0, 1)), 0, atol=1e-12)   # one statistic per channel
    np.testing.assert_allclose(y.var(axis=(0, 1)), 1, rtol=1e-4)     # biased, as nn.BatchNorm1d
    assert np.abs(y.mean(axis=0)).max() > 0.05                       # not per position (dim 0 only)
    unbiased = x.var(axis=(0, 1), ddof=1)                            # running var: unbiased
    np.testing.assert_allclose(bn.running_var, 0.9 + 0.1 * unbiased, rtol=1e-12)
    np.testing.assert_allclose(bn.running_mean, 0.1 * x.mean(axis=(0, 1)), rtol=1e-12)
    # the lecture normalized with the unbiased variance: a factor sqrt((M - 1) / M) apart
    m = 5 * 4
    lecture = (x - x.mean(axis=(0, 1))) / np.sqrt(unbiased + 1e-5)
    np.testing.assert_allclose(lecture, y * np.sqrt((m - 1) / m), rtol=1e-5)


def test_the_lecture_model_has_76579_parameters_and_torchs_names():
    torch.manual_seed(0)
    twin = thw.WaveNet()
    builtin = compare_wavenet.BuiltinWaveNet()
    model = npw.WaveNet()
    assert sum(p.data.size for p in model.parameters()) == 76579
    assert sum(p.numel() for p in twin.parameters()) == 76579
    shapes = {k: tuple(v.shape) for k, v in builtin.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in twin.state_dict().items()} == shapes
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    assert shapes["layers.2.weight"] == (128, 48) and shapes["layers.13.weight"] == (27, 128)
    model.load_state_dict(builtin.state_dict())                      # nn modules' weights load
    head = np.abs(npw.WaveNet().layers[-1].weight.data).max()
    assert head <= 0.1 / np.sqrt(128)                                # the lecture's 0.1 scale
    with pytest.raises(ValueError, match="power of two"):
        npw.WaveNet(block_size=6)


def test_loss_at_init_is_near_log_27():
    """The 0.1-scaled head makes the first prediction nearly uniform: loss ~ log(27) = 3.30."""
    rng = np.random.default_rng(3)
    model = npw.WaveNet().double()
    loss = model(rng.integers(0, 27, (256, 8)), rng.integers(0, 27, 256))
    assert abs(float(loss) - np.log(27)) < 0.05


# --- the receptive field: the hierarchical model and the dilated causal stack ---------------------
@pytest.mark.parametrize("block_size, dilations", [(8, (1, 2, 4)), (16, (1, 2, 4, 8))])
def test_the_causal_stack_computes_the_hierarchical_model_at_every_position(block_size,
                                                                          dilations):
    """With the same weights and the same (running) statistics, the stack's output at t is the
    hierarchical model's output for the window of block_size characters ending at t."""
    hier = npw.WaveNet(block_size=block_size, n_embd=5, n_hidden=7).double()
    rng = np.random.default_rng(4)
    state = hier.state_dict()
    for key in state:                                                 # non-trivial statistics
        if key.endswith("running_mean"):
            state[key] = 0.3 * rng.standard_normal(state[key].shape)
        elif key.endswith("running_var"):
            state[key] = rng.uniform(0.5, 1.5, state[key].shape)
    hier.load_state_dict(state)
    stack = npw.CausalConvWaveNet(n_embd=5, n_hidden=7, dilations=dilations).double()
    stack.load_state_dict(npw.causal_conv_state(hier.state_dict()))
    hier.eval()
    stack.eval()
    assert stack.receptive_field == block_size
    seq = rng.integers(0, 27, (3, 40))
    logits = stack(seq)                                               # (B, T, V)
    windows = np.stack([hier(seq[:, t - block_size + 1:t + 1])
                        for t in range(block_size - 1, 40)], axis=1)
    np.testing.assert_allclose(logits[:, block_size - 1:], windows, rtol=1e-12, atol=1e-12)
    # and the torch twin of the stack agrees with the NumPy one
    torch_stack = thw.CausalConvWaveNet(n_embd=5, n_hidden=7, dilations=dilations).double()
    torch_stack.load_state_dict({k: torch.as_tensor(v) for k, v in stack.state_dict().items()})
    torch_stack.eval()
    np.testing.assert_allclose(torch_stack(torch.from_numpy(seq)).detach().numpy(), logits,
                               rtol=1e-12, atol=1e-12)


def test_perturbing_one_input_position_changes_the_same_outputs_in_both_models():
    """Receptive field 16 (block_size 16; dilations 1, 2, 4, 8): changing character j changes
    the stack's outputs at t = j .. j + 15 and nothing else, and changes the hierarchical
    model's prediction from every window that contains j -- the same windows. Eval mode: in
    training, batch statistics would couple every position with every other."""
    hier = npw.WaveNet(block_size=16, n_embd=4, n_hidden=6).double().eval()
    stack = npw.CausalConvWaveNet(n_embd=4, n_hidden=6).double().eval()
    stack.load_state_dict(npw.causal_conv_state(hier.state_dict()))
    rng = np.random.default_rng(5)
    seq = rng.integers(1, 27, (1, 48))
    base_stack = stack(seq)[0]                                        # (T, V)
    base_hier = [hier(seq[:, t - 15:t + 1])[0] for t in range(15, 48)]
    for j in (3, 20, 47):
        changed = seq.copy()
        changed[0, j] = 0 if seq[0, j] else 1
        stack_moved = np.flatnonzero(np.abs(stack(changed)[0] - base_stack).max(axis=1) > 1e-12)
        hier_moved = [t for t, base in zip(range(15, 48), base_hier, strict=True)
                      if np.abs(hier(changed[:, t - 15:t + 1])[0] - base).max() > 1e-12]
        expected = list(range(j, min(j + 16, 48)))
        assert stack_moved.tolist() == expected
        assert hier_moved == [t for t in expected if t >= 15]


# --- training parity and the demo ---------------------------------------------------------------
def test_thirty_sgd_steps_agree_to_1e9_in_float64_and_the_loss_falls():
    concept = registry.get("wavenet")
    case = concept.case("train-lecture-sizes-30-steps")
    outcome = concept.run(case, Trial("float64", seed=3, builtin=False, fd=False))
    losses = np.array([outcome.numpy[f"step{k}/loss"] for k in range(1, 31)])
    for name, value in outcome.numpy.items():
        reference = outcome.torch[name]
        assert np.abs(value - reference).max() <= 1e-9 * max(np.abs(reference).max(), 1e-300)
    assert abs(losses[0] - np.log(27)) < 0.1 and losses[-5:].mean() < losses[:5].mean() - 0.2


def test_the_train_demo_prints_both_twins_side_by_side():
    from compare.data.names import builtin_words
    out = io.StringIO()
    torch.set_num_threads(1)
    result = compare_wavenet.train_side_by_side(builtin_words()[:400], steps=40, every=20,
                                                out=out)
    text = out.getvalue()
    assert "numpy loss" in text and "torch loss" in text and " dev " in text
    (train_np, train_th), (dev_np, dev_th) = result["final"]["train"], result["final"]["dev"]
    assert abs(train_np - train_th) < 1e-4 and abs(dev_np - dev_th) < 1e-4
    np.testing.assert_allclose(result["losses"]["numpy"], result["losses"]["torch"], rtol=1e-4)
    assert compare_wavenet.main(["--train", "--steps", "0"]) == 2


# --- verify ---------------------------------------------------------------------------------------
class ScatterOverwrites(npw.Conv1d):
    """The classic col2im bug: overlapping windows overwrite instead of adding up."""

    def backward(self, grad_output):
        dx = super().backward(grad_output)
        cols, w_mat, padded_shape, geometry, (left, right), _ = self._cache
        g_mat = grad_output.transpose(1, 0, 2).reshape(w_mat.shape[0], w_mat.shape[1], -1)
        dcols = np.matmul(w_mat.transpose(0, 2, 1), g_mat)
        index = read_positions(tuple(padded_shape), *geometry)
        flat = np.zeros(int(np.prod(padded_shape)), dx.dtype)
        flat[index] = dcols.reshape(-1)                               # buffered: last one wins
        wrong = flat.reshape(padded_shape)[:, :, 0, left:padded_shape[3] - right]
        return wrong


class FlattenBackwardTransposed(npw.FlattenConsecutive):
    """Undoing the reshape in the wrong order: (B, n C) read as C-major instead of n-major."""

    def backward(self, grad_output):
        batch, steps, channels = self._shape
        grad = grad_output.reshape(batch, steps // self.n, channels, self.n)
        return grad.transpose(0, 1, 3, 2).reshape(self._shape)


class WaveNetWithBrokenFlatten(npw.WaveNet):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.layers = ModuleList([FlattenBackwardTransposed(layer.n)
                                  if isinstance(layer, npw.FlattenConsecutive) else layer
                                  for layer in self.layers])


def test_verify_accepts_copies_and_names_the_broken_tensor(tmp_path):
    path = tmp_path / "mine.py"
    shutil.copy(ROOT / "numpy_impl/sequence/wavenet.py", path)
    assert verify("wavenet:Conv1d", load(f"{path}:Conv1d")).passed
    report = verify("wavenet:Conv1d", ScatterOverwrites)
    failing = {d.name for d in report.diffs if not d.passed}
    assert "grad.input.x" in failing and "grad.param.weight" not in failing
    report = verify("wavenet:WaveNet", WaveNetWithBrokenFlatten)
    failing = {d.name for d in report.diffs if not d.passed}
    assert "grad.param.layers.0.weight" in failing                   # the embedding's gradient
    assert "out" not in failing and "grad.param.layers.13.weight" not in failing
