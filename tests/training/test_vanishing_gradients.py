"""Focused tests of vanishing gradients: what depth does to the gradient per activation and
what batch norm and residual connections change (the point of the concept), names, eval mode,
and the plot."""
import numpy as np
import pytest
import torch

from compare.training import vanishing_gradients as cmp
from numpy_impl.training import vanishing_gradients as npv
from torch_impl.training import vanishing_gradients as thv


@pytest.fixture(scope="module")
def norms():
    return {(a, c): cmp.gradient_norms(a, c, depth=12, features=16, batch=32)
            for a in ("sigmoid", "tanh", "relu") for c in cmp.CONFIGS}


def test_both_twins_give_the_same_norms(norms):
    for pair in norms.values():
        np.testing.assert_allclose(pair["numpy"], pair["torch"], rtol=1e-12)


def test_plain_sigmoid_vanishes_and_the_fixes_keep_the_gradient(norms):
    plain = norms["sigmoid", "plain"]["numpy"]
    assert plain[0] / plain[-1] < 1e-6                 # 12 layers of f' <= 1/4: vanished
    assert np.all(np.diff(plain) > 0)                  # shrinking layer after layer
    for config in ("batchnorm", "residual", "batchnorm-residual"):
        fixed = norms["sigmoid", config]["numpy"]
        assert fixed[0] / fixed[-1] > 0.1, config       # within a decade from end to end
    tanh, relu = norms["tanh", "plain"]["numpy"], norms["relu", "plain"]["numpy"]
    assert plain[0] / plain[-1] < tanh[0] / tanh[-1]   # sigmoid loses the most
    assert plain[0] / plain[-1] < relu[0] / relu[-1]


def test_state_dict_keys_match_torch_and_the_builtin():
    init = dict(features=3, depth=2, activation="relu", batchnorm=True, residual=True)
    torch.manual_seed(0)
    twin = thv.DeepMLP(**init)
    keys = list(twin.state_dict())
    assert keys == list(cmp.BuiltinDeepMLP(**init).state_dict())
    numpy_model = npv.DeepMLP(**init)
    assert list(numpy_model.state_dict()) == keys
    assert "layers.1.bn.running_var" in keys and "layers.0.fc.weight" in keys


def test_eval_mode_uses_running_statistics_and_intermediates_chain():
    init = dict(features=4, depth=3, activation="tanh", batchnorm=True, residual=False)
    torch.manual_seed(1)
    twin = thv.DeepMLP(**init).double()
    model = npv.DeepMLP(**init).double()
    model.load_state_dict(twin.state_dict())
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    model.eval()
    twin.eval()
    out = model(x)
    grad_x = model.backward(g)
    xt = torch.tensor(x, requires_grad=True)
    twin(xt).backward(torch.tensor(g))
    np.testing.assert_allclose(out, twin(torch.tensor(x)).detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(grad_x, xt.grad.numpy(), rtol=1e-12)
    np.testing.assert_array_equal(model.intermediate_grads["layer0.input"], grad_x)
    # eval: nothing moved the running statistics
    np.testing.assert_array_equal(model.layers[0].bn.running_mean, np.zeros(4))
    inputs, weights = npv.gradient_norms(model)
    assert inputs.shape == weights.shape == (3,)
    assert inputs[0] == pytest.approx(np.linalg.norm(grad_x), rel=1e-15)


def test_unknown_activation_is_an_error():
    with pytest.raises(ValueError, match="activation must be one of sigmoid, tanh, relu"):
        npv.DeepMLP(3, 2, activation="gelu")


def test_plot_is_written(tmp_path, monkeypatch):
    small = cmp.gradient_norms  # the same drawing from shallower, narrower networks
    monkeypatch.setattr(cmp, "gradient_norms",
                        lambda a, c, seed: small(a, c, seed, features=4, depth=3, batch=8))
    paths = cmp.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["vanishing_gradients_by_layer.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
