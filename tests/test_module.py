"""The NumPy Module protocol: registration, dotted names, state_dict, modes, grads, dtypes."""
import numpy as np
import pytest
import torch
from torch import nn

import numpy_impl
from numpy_impl import Module, ModuleList, Parameter
from numpy_impl.layers.linear import Linear


class Scale(Module):
    """A user's own layer, written as the README's "Using the NumPy twins" says one is."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = Parameter(np.ones(n))
        self.register_buffer("calls", np.zeros((), dtype=np.int64))

    def forward(self, x):
        self.calls += 1
        self._x = x
        return x * self.weight.data

    def backward(self, grad_output):
        self.weight.grad += (grad_output * self._x).sum(axis=0)
        return grad_output * self.weight.data


class Net(Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = Linear(3, 4)
        self.blocks = ModuleList([Scale(4), Scale(4)])
        self.head = Linear(4, 2, bias=False)


class TorchScale(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))


class TorchNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.blocks = nn.ModuleList([TorchScale(4), TorchScale(4)])
        self.head = nn.Linear(4, 2, bias=False)


def test_dotted_names_and_order_equal_torch():
    ours, theirs = Net(), TorchNet()
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]


def test_load_state_dict_from_torch_tensors_keeps_own_dtype():
    ours, theirs = Net(), TorchNet().double()
    ours.load_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(ours.fc.weight.data, theirs.fc.weight.detach().numpy())
    assert ours.fc.weight.data.dtype == np.float32  # copied into the existing float32 slot
    ours.double().load_state_dict(theirs.state_dict())
    np.testing.assert_array_equal(ours.fc.weight.data, theirs.fc.weight.detach().numpy())


def test_state_dict_round_trip_is_a_copy():
    net = Net()
    state = net.state_dict()
    state["fc.weight"][...] = 7.0
    assert not np.any(net.fc.weight.data == 7.0)
    net.load_state_dict(state)
    assert np.all(net.fc.weight.data == 7.0)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("fc.bias"), "missing key(s): 'fc.bias'"),
    (lambda s: s.update(extra=np.zeros(1)), "unexpected key(s): 'extra'"),
    (lambda s: s.update({"fc.weight": np.zeros((3, 4))}),
     "shape mismatch for 'fc.weight': the model has (4, 3), the state_dict has (3, 4)"),
])
def test_load_state_dict_errors_name_the_problem(change, message):
    net = Net()
    state = net.state_dict()
    change(state)
    with pytest.raises(RuntimeError) as error:
        net.load_state_dict(state)
    assert message in str(error.value)


def test_non_strict_load_ignores_missing_and_unexpected():
    net = Net()
    net.load_state_dict({"fc.bias": np.full(4, 2.0), "nonsense": np.zeros(3)}, strict=False)
    assert np.all(net.fc.bias.data == 2.0)


def test_train_eval_recursive():
    net = Net()
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())


def test_backward_accumulates_until_zero_grad():
    layer = Scale(3)
    x, g = np.arange(6.0).reshape(2, 3), np.ones((2, 3))
    for _ in range(2):
        layer(x)
        layer.backward(g)
    np.testing.assert_array_equal(layer.weight.grad, 2 * x.sum(axis=0))
    layer.zero_grad()
    assert np.all(layer.weight.grad == 0)
    assert int(layer.calls) == 2  # a buffer updated in forward


def test_shared_parameter_listed_once():
    net = Net()
    net.head.weight = net.fc.weight  # tied (different shapes are irrelevant to listing)
    names = [n for n, _ in net.named_parameters()]
    assert names.count("fc.weight") == 1 and "head.weight" not in names


def test_to_casts_parameters_grads_and_float_buffers_only():
    net = Net().to(np.float64)
    assert all(p.data.dtype == np.float64 and p.grad.dtype == np.float64 for p in net.parameters())
    assert net.blocks[0].calls.dtype == np.int64


def test_assigning_before_init_says_what_to_do():
    class Broken(Module):
        def __init__(self):
            self.weight = Parameter(np.ones(2))

    with pytest.raises(AttributeError, match="super\\(\\).__init__\\(\\)"):
        Broken()


def test_manual_seed_makes_initialization_reproducible():
    numpy_impl.manual_seed(3)
    a = Linear(4, 5).weight.data.copy()
    numpy_impl.manual_seed(3)
    b = Linear(4, 5).weight.data
    np.testing.assert_array_equal(a, b)
    bound = 1 / np.sqrt(4)
    assert a.dtype == np.float32 and np.all(np.abs(a) <= bound)


def test_non_persistent_buffer_is_not_saved():
    class WithCache(Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("cache", np.zeros(2), persistent=False)

    assert WithCache().state_dict() == {}
    assert [n for n, _ in WithCache().named_buffers()] == ["cache"]
