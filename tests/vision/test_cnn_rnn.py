"""Focused tests of the CNN-RNN twins: names and shapes, the forward as per-frame CNN plus a
recurrence written out here, the shared convolutions' gradient as the sum over frames, every
frame reached by the gradient, errors, and verify."""
import dataclasses

import numpy as np
import pytest
import torch

import compare.vision.cnn_rnn as cmp_cnn_rnn
from compare.registry import get
from compare.verify import verify
from numpy_impl.vision.cnn import CNNFeatures
from numpy_impl.vision.cnn_rnn import CNNRNN
from torch_impl.vision import cnn_rnn as torch_cnn_rnn

SMALL = dict(num_classes=3, hidden_size=5, channels=(2, 3), image_size=12)
KEYS = ["features.conv1.weight", "features.conv1.bias", "features.conv2.weight",
        "features.conv2.bias", "rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.bias_ih_l0",
        "rnn.bias_hh_l0", "fc.weight", "fc.bias"]


def _twins(seed: int = 0, **init):
    torch.manual_seed(seed)
    twin = torch_cnn_rnn.CNNRNN(**init).double()
    model = CNNRNN(**init).double()
    model.load_state_dict(twin.state_dict())
    return model, twin


def test_names_and_shapes_at_mnist_sizes():
    model, twin = _twins()
    builtin = cmp_cnn_rnn.BuiltinCNNRNN()
    for module in (model, twin, builtin):
        assert list(module.state_dict()) == KEYS
    shapes = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
    assert shapes["rnn.weight_ih_l0"] == (32, 400) and shapes["fc.weight"] == (5, 32)
    assert {k: tuple(v.shape) for k, v in builtin.state_dict().items()} == shapes
    x = np.random.default_rng(0).uniform(size=(2, 3, 1, 28, 28))
    logits = model(x)
    assert logits.shape == (2, 5)
    assert model.intermediates["features"].shape == (2, 3, 400)
    assert model.intermediates["last_hidden"].shape == (2, 32)
    np.testing.assert_allclose(logits, twin(torch.tensor(x)).detach().numpy(), rtol=1e-13)


def test_forward_is_a_cnn_per_frame_then_a_tanh_recurrence():
    model, _ = _twins(**SMALL)
    s = {k: np.asarray(v) for k, v in model.state_dict().items()}
    cnn = CNNFeatures(channels=(2, 3), image_size=12).double()
    cnn.load_state_dict({k[len("features."):]: v for k, v in s.items()
                         if k.startswith("features.")})
    x = np.random.default_rng(1).uniform(size=(2, 4, 1, 12, 12))
    h = np.zeros((2, 5))
    for t in range(4):                                   # frame by frame, step by step
        f_t = cnn(x[:, t])                               # (2, 3)
        h = np.tanh(f_t @ s["rnn.weight_ih_l0"].T + s["rnn.bias_ih_l0"]
                    + h @ s["rnn.weight_hh_l0"].T + s["rnn.bias_hh_l0"])
    expected = h @ s["fc.weight"].T + s["fc.bias"]
    np.testing.assert_allclose(model(x), expected, rtol=1e-13, atol=1e-15)


def test_shared_convolution_gradient_is_the_sum_over_frames():
    model, _ = _twins(**SMALL)
    x = np.random.default_rng(2).uniform(size=(2, 4, 1, 12, 12))
    model(x)
    model.backward(np.random.default_rng(3).standard_normal((2, 3)))
    d_f = model.intermediate_grads["features"]           # (2, 4, 3) dL/df per frame
    per_frame = CNNFeatures(channels=(2, 3), image_size=12).double()
    per_frame.load_state_dict({k: v for k, v in model.features.state_dict().items()})
    for t in range(4):                                   # one frame's backward at a time
        per_frame(x[:, t])
        per_frame.backward(d_f[:, t])
    for name, param in per_frame.named_parameters():
        shared = dict(model.features.named_parameters())[name].grad
        np.testing.assert_allclose(shared, param.grad, rtol=1e-13, atol=1e-17)
        assert np.abs(shared).max() > 0


def test_every_frame_gets_gradient_through_time():
    model, twin = _twins(**SMALL)
    x = np.random.default_rng(4).uniform(size=(2, 5, 1, 12, 12))
    g = np.random.default_rng(5).standard_normal((2, 3))
    model(x)
    dx = model.backward(g)
    assert dx.shape == x.shape
    assert all(np.abs(dx[:, t]).max() > 0 for t in range(5))   # the first frame too
    xt = torch.tensor(x, requires_grad=True)
    twin(xt).backward(torch.tensor(g))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-18)


def test_wrong_shapes_are_one_clear_error():
    for model, wrap in ((CNNRNN(), np.zeros), (torch_cnn_rnn.CNNRNN(), torch.zeros)):
        with pytest.raises(ValueError, match=r"expects frame sequences \(B, T, 1, 28, 28\), "
                                             r"got shape \(2, 1, 28, 28\)"):
            model(wrap((2, 1, 28, 28)))


def test_verify_accepts_a_copy_and_catches_a_gradient_to_every_step():
    concept = get("cnn_rnn")
    quick = dataclasses.replace(concept, cases=[concept.case("small")])

    class MyCNNRNN(CNNRNN):
        pass

    assert verify(quick, MyCNNRNN).passed

    class EveryStepCNNRNN(CNNRNN):
        """Sends dL/dh_{T-1} into every step's output, as if the logits read all of them."""

        def backward(self, grad_output):
            batch, steps = self._shape[:2]
            d_last = self.fc.backward(grad_output)
            d_hs = np.repeat(d_last[:, None], steps, axis=1)
            d_f = self.rnn.backward((d_hs, None))
            return self.features.backward(d_f.reshape(batch * steps, -1)).reshape(self._shape)

    report = verify(quick, EveryStepCNNRNN)
    failed = {d.name for d in report.diffs if not d.passed}
    assert not report.passed
    assert "grad.param.rnn.weight_ih_l0" in failed and "grad.param.fc.weight" not in failed
