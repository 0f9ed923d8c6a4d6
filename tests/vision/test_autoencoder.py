"""Focused tests of the autoencoder twins: a hand-computed loss, names and shapes by latent size,
the input gradient's two paths, training parity (float64 <= 1e-9 after 20 steps), the loss
curves plot, and verify."""
import dataclasses
import math

import numpy as np
import pytest
import torch

import compare.vision.autoencoder as cmp_ae
from compare.registry import get
from compare.runner import initial_state, run_concept
from compare.verify import verify
from numpy_impl.vision.autoencoder import Autoencoder
from torch_impl.vision import autoencoder as torch_ae


def _twins(seed: int = 0, **init):
    torch.manual_seed(seed)
    twin = torch_ae.Autoencoder(**init).double()
    numpy_model = Autoencoder(**init).double()
    numpy_model.load_state_dict(twin.state_dict())
    return numpy_model, twin


def test_loss_by_hand_on_a_two_pixel_model():
    """in 2 -> hidden 1 -> latent 1 -> hidden 1 -> out 2, every weight set by hand."""
    model = Autoencoder(latent_size=1, in_features=2, hidden_size=1).double()
    model.load_state_dict({"enc1.weight": [[1.0, -1.0]], "enc1.bias": [0.5],
                           "enc2.weight": [[2.0]], "enc2.bias": [-0.25],
                           "dec1.weight": [[1.5]], "dec1.bias": [0.0],
                           "dec2.weight": [[1.0], [-2.0]], "dec2.bias": [0.1, 0.2]})
    x = np.array([[0.9, 0.2], [0.1, 0.8]])
    expected = 0.0
    for a, b in x:
        h1 = max(a - b + 0.5, 0.0)
        z = 2.0 * h1 - 0.25
        h2 = max(1.5 * z, 0.0)
        x_hat = [1 / (1 + math.exp(-(h2 + 0.1))), 1 / (1 + math.exp(-(-2 * h2 + 0.2)))]
        expected += (x_hat[0] - a) ** 2 + (x_hat[1] - b) ** 2
    loss = model(x)
    assert loss.shape == ()
    np.testing.assert_allclose(loss, expected / 4, rtol=1e-15)
    # the second row has h1 = max(-0.2, 0) = 0: the ReLU cuts the encoder path, so its input
    # gradient is only the MSE target path -2 (x̂ - x) / (B D)
    dx = model.backward(np.array(1.0))
    x_hat = model.intermediates["reconstruction"]
    np.testing.assert_allclose(dx[1], -2 * (x_hat[1] - x[1]) / 4, rtol=1e-15)


@pytest.mark.parametrize("latent_size", [1, 7, 32])
def test_names_and_shapes_follow_the_latent_size(latent_size):
    numpy_model, twin = _twins(latent_size=latent_size)
    shapes = {"enc1.weight": (128, 784), "enc1.bias": (128,),
              "enc2.weight": (latent_size, 128), "enc2.bias": (latent_size,),
              "dec1.weight": (128, latent_size), "dec1.bias": (128,),
              "dec2.weight": (784, 128), "dec2.bias": (784,)}
    assert {k: tuple(v.shape) for k, v in twin.state_dict().items()} == shapes
    assert {k: v.shape for k, v in numpy_model.state_dict().items()} == shapes
    assert list(numpy_model.state_dict()) == list(twin.state_dict())
    x = np.random.default_rng(0).uniform(size=(3, 1, 28, 28))
    assert numpy_model.encode(x).shape == (3, latent_size)
    x_hat = numpy_model.reconstruct(x)
    assert x_hat.shape == x.shape and 0.0 < x_hat.min() and x_hat.max() < 1.0
    np.testing.assert_allclose(numpy_model(x), np.mean((x_hat - x) ** 2), rtol=1e-14)
    np.testing.assert_allclose(x_hat, twin.reconstruct(torch.tensor(x)).detach().numpy(),
                               rtol=1e-13)


def test_input_gradient_is_the_encoder_path_plus_the_target_path():
    numpy_model, twin = _twins(latent_size=4)
    x = np.random.default_rng(1).uniform(size=(2, 784))
    numpy_model(x)
    dx = numpy_model.backward(np.array(1.0))
    # autograd with the target detached: the encoder path alone
    xt = torch.tensor(x, requires_grad=True)
    rows_hat = twin.decode(twin.encode(xt))
    torch.nn.functional.mse_loss(rows_hat, xt.detach()).backward()
    target_path = -2.0 * (numpy_model.intermediates["reconstruction"] - x) / x.size
    np.testing.assert_allclose(dx - target_path, xt.grad.numpy(), rtol=1e-12, atol=1e-17)
    assert np.abs(target_path).min() > 0 and np.abs(xt.grad.numpy()).max() > 0  # both count


def test_wrong_feature_count_is_one_clear_error():
    for model, wrap in ((Autoencoder(4), np.zeros), (torch_ae.Autoencoder(4), torch.zeros)):
        with pytest.raises(ValueError, match="expects 784 features per example, got input of "
                                             r"shape \(2, 1, 27, 27\)"):
            model(wrap((2, 1, 27, 27)))


def test_training_parity_after_20_steps_and_the_loss_falls():
    # train-sgd alone (train-adam and float32 run in the agreement suite)
    report = run_concept(get("autoencoder"), dtypes=("float64",), cases=["train-sgd"])
    assert report.passed, report.table()
    twin_diffs = [d for d in report.diffs if d.check == "numpy-vs-torch"]
    names = {d.name for d in twin_diffs if d.case == "train-sgd"}
    assert {f"step{k}/loss" for k in range(1, 21)} <= names
    assert "step20/param.dec2.weight" in names and "step21/loss" not in names
    assert max(d.max_rel for d in twin_diffs) <= 1e-9          # the bound
    assert {d.check for d in report.diffs} >= {"torch-vs-builtin"}
    outcome = cmp_ae.run(get("autoencoder").case("train-sgd"), cmp_ae.Trial("float64"))
    assert outcome.numpy["step20/loss"] < 0.9 * outcome.numpy["step1/loss"]
    # the parameters moved: parity is not the trivial agreement of untouched weights
    state = initial_state(get("autoencoder").case("train-sgd"), cmp_ae.Trial("float64"),
                                 np.random.default_rng(0))
    assert np.abs(outcome.numpy["step20/param.enc1.weight"] - state["enc1.weight"]).max() > 1e-3


def test_training_batches_are_the_digits_in_the_trial_dtype():
    case = get("autoencoder").case("train-sgd")
    batches = cmp_ae.training_batches(case, cmp_ae.Trial("float32"))
    assert len(batches) == 20 and batches[0].shape == (8, 1, 28, 28)
    assert batches[0].dtype == np.float32 and 0.0 <= batches[0].min() and batches[0].max() <= 1
    assert not np.array_equal(batches[0], batches[1])


def test_loss_curves_plot_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(cmp_ae, "PLOT_STEPS", 6)
    by_numpy, by_torch = cmp_ae.loss_curves("float64")
    assert by_numpy.shape == (6,)
    np.testing.assert_allclose(by_numpy, by_torch, rtol=1e-13)
    paths = cmp_ae.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["autoencoder_training_float64.png",
                                       "autoencoder_training_float32.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_verify_accepts_a_copy_and_catches_a_forgotten_target_path():
    concept = get("autoencoder")
    # one module case and one training case keep this test quick; the CLI checks them all
    quick = dataclasses.replace(concept, cases=[concept.case("small"), concept.case("train-sgd")])

    class MyAutoencoder(Autoencoder):
        pass

    report = verify(quick, MyAutoencoder)
    assert report.passed
    assert {d.case for d in report.diffs} == {"small", "train-sgd"}

    class EncoderPathOnly(Autoencoder):
        def backward(self, grad_output):
            d_x_hat, _ = self.loss_fn.backward(grad_output)
            d = self.dec1.backward(self.dec_act.backward(self.dec2.backward(
                self.out_act.backward(d_x_hat))))
            d = self.enc1.backward(self.enc_act.backward(self.enc2.backward(d)))
            return d.reshape(self._shape)

    report = verify(dataclasses.replace(concept, cases=[concept.case("small")]), EncoderPathOnly)
    assert not report.passed
    failing = {d.name for d in report.diffs if not d.passed}
    assert failing == {"grad.input.x"}
