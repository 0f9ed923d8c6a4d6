"""Focused tests of the residual vs plain stack: what the gradient does with depth (the point
of the concept), the skip path's identity term, names, accumulation and the depth plot."""
import numpy as np
import torch

from compare.layers.residual import extra_plots, input_gradient_norms
from numpy_impl.layers import residual as npr
from torch_impl.layers import residual as thr


def _twins(features: int, depth: int, residual: bool):
    torch.manual_seed(0)
    twin = thr.Stack(features, depth, residual).double()
    numpy_stack = npr.Stack(features, depth, residual).double()
    numpy_stack.load_state_dict(twin.state_dict())
    return numpy_stack, twin


def test_plain_input_gradient_decays_with_depth_and_residual_does_not():
    residual_np, residual_th = input_gradient_norms(True, seed=0)
    plain_np, plain_th = input_gradient_norms(False, seed=0)
    # both twins give the same norms (the agreement suite compares the tensors themselves)
    np.testing.assert_allclose(residual_np, residual_th, rtol=1e-12)
    np.testing.assert_allclose(plain_np, plain_th, rtol=1e-12)
    # plain: every block shrinks the gradient, ten blocks lose more than two decades
    assert np.all(np.diff(plain_np) > 0)  # norm grows from block 0 to block 9
    assert plain_np[0] / plain_np[-1] < 1e-2
    # residual: the identity path keeps the gradient at the first block at least as large
    assert residual_np[0] / residual_np[-1] >= 1.0
    # same weights, input and upstream gradient: the skips are worth > 2 decades at block 0
    assert residual_np[0] / plain_np[0] > 100.0


def test_residual_backward_is_plain_backward_plus_the_upstream_gradient():
    rng = np.random.default_rng(1)
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    residual, plain = npr.Block(4, residual=True).double(), npr.Block(4, residual=False).double()
    plain.load_state_dict(residual.state_dict())
    np.testing.assert_allclose(residual(x), x + plain(x), rtol=0, atol=0)
    np.testing.assert_allclose(residual.backward(g), plain.backward(g) + g, rtol=1e-15)


def test_state_dict_keys_are_torchs():
    numpy_stack, twin = _twins(3, 4, residual=False)
    keys = [f"blocks.{k}.fc.{p}" for k in range(4) for p in ("weight", "bias")]
    assert list(twin.state_dict()) == keys
    assert list(numpy_stack.state_dict()) == keys
    assert [tuple(v.shape) for v in numpy_stack.state_dict().values()] == [(3, 3), (3,)] * 4


def test_intermediates_are_block_inputs_and_their_gradients_chain():
    numpy_stack, twin = _twins(5, 3, residual=True)
    rng = np.random.default_rng(2)
    x, g = rng.standard_normal((2, 5)), rng.standard_normal((2, 5))
    out = numpy_stack(x)
    grad_x = numpy_stack.backward(g)
    assert list(numpy_stack.intermediates) == ["block0.input", "block1.input", "block2.input"]
    np.testing.assert_array_equal(numpy_stack.intermediates["block0.input"], x)
    np.testing.assert_array_equal(numpy_stack.intermediate_grads["block0.input"], grad_x)
    # block 2's input is block 1's output
    np.testing.assert_allclose(numpy_stack.blocks[1](numpy_stack.intermediates["block1.input"]),
                               numpy_stack.intermediates["block2.input"], rtol=1e-15)
    xt = torch.tensor(x, requires_grad=True)
    out_t = twin(xt)
    out_t.backward(torch.tensor(g))
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-13)
    for name, tensor in twin.intermediates.items():
        np.testing.assert_allclose(numpy_stack.intermediate_grads[name], tensor.grad.numpy(),
                                   rtol=1e-12)


def test_parameter_gradients_accumulate_over_two_backward_calls():
    numpy_stack, _ = _twins(4, 2, residual=True)
    rng = np.random.default_rng(3)
    x, g = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    numpy_stack(x)
    numpy_stack.backward(g)
    once = {name: p.grad.copy() for name, p in numpy_stack.named_parameters()}
    numpy_stack(x)
    numpy_stack.backward(g)
    for name, p in numpy_stack.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[name], rtol=1e-15)


def test_float32_in_float32_out():
    numpy_stack = npr.Stack(4, 3, residual=True)  # parameters in the default float32
    x = np.random.default_rng(4).standard_normal((2, 4)).astype(np.float32)
    out = numpy_stack(x)
    grad = numpy_stack.backward(np.ones_like(out))
    assert out.dtype == np.float32 and grad.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in numpy_stack.parameters())


def test_depth_plot_is_written(tmp_path):
    import matplotlib.image

    paths = extra_plots(tmp_path / "plots", seed=0)
    assert paths == [tmp_path / "plots" / "residual_depth.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    height, width, _ = matplotlib.image.imread(paths[0]).shape
    assert (height, width) == (450, 700)
