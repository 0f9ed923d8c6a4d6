"""Focused tests of the CNN twins: the forward against a loop-by-loop reference, names and
shapes, gradient accumulation, the rows the pools drop, errors, training parity (float64
<= 1e-9 after 20 steps), the loss-curve plot, ``--train`` on generated digits and on IDX
files, and verify (a copy passes, a wrong unflatten is caught)."""
import dataclasses

import numpy as np
import pytest
import torch

import compare.vision.cnn as cmp_cnn
from compare.data.digits import digits
from compare.data.mnist import write_idx
from compare.registry import get
from compare.runner import initial_state, run_concept
from compare.verify import verify
from numpy_impl.vision.cnn import CNN, CNNFeatures, predict
from torch_impl.vision import cnn as torch_cnn

SMALL = dict(num_classes=4, channels=(2, 3), image_size=12)
KEYS = ["features.conv1.weight", "features.conv1.bias", "features.conv2.weight",
        "features.conv2.bias", "fc.weight", "fc.bias"]


def _twins(seed: int = 0, **init):
    torch.manual_seed(seed)
    twin = torch_cnn.CNN(**init).double()
    model = CNN(**init).double()
    model.load_state_dict(twin.state_dict())
    return model, twin


# --- a reference written with plain loops, nothing shared with the twins -------------------
def _conv_loops(x, w, b):
    batch, _, height, width = x.shape
    out, _, k, _ = w.shape
    y = np.zeros((batch, out, height - k + 1, width - k + 1))
    for n in range(batch):
        for o in range(out):
            for r in range(height - k + 1):
                for c in range(width - k + 1):
                    y[n, o, r, c] = np.sum(w[o] * x[n, :, r:r + k, c:c + k]) + b[o]
    return y


def _pool_loops(x):
    batch, channels, height, width = x.shape
    y = np.zeros((batch, channels, height // 2, width // 2))
    for r in range(height // 2):
        for c in range(width // 2):
            y[:, :, r, c] = x[:, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2].max(axis=(2, 3))
    return y


def test_forward_matches_a_loop_by_loop_reference():
    model, _ = _twins(**SMALL)
    s = {k: np.asarray(v) for k, v in model.state_dict().items()}
    x = np.random.default_rng(0).uniform(size=(3, 1, 12, 12))
    w1, b1 = s["features.conv1.weight"], s["features.conv1.bias"]
    w2, b2 = s["features.conv2.weight"], s["features.conv2.bias"]
    p1 = _pool_loops(np.maximum(_conv_loops(x, w1, b1), 0.0))
    p2 = _pool_loops(np.maximum(_conv_loops(p1, w2, b2), 0.0))
    logits = p2.reshape(3, -1) @ s["fc.weight"].T + s["fc.bias"]
    assert p2.shape == (3, 3, 1, 1) and logits.shape == (3, 4)
    np.testing.assert_allclose(model(x), logits, rtol=1e-13, atol=1e-15)


def test_names_shapes_and_the_400_features():
    model, twin = _twins()
    builtin = cmp_cnn.BuiltinCNN()
    shapes = {"features.conv1.weight": (8, 1, 3, 3), "features.conv1.bias": (8,),
              "features.conv2.weight": (16, 8, 3, 3), "features.conv2.bias": (16,),
              "fc.weight": (10, 400), "fc.bias": (10,)}
    for module in (twin, builtin):
        assert list(module.state_dict()) == KEYS
        assert {k: tuple(v.shape) for k, v in module.state_dict().items()} == shapes
    assert list(model.state_dict()) == KEYS
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes
    assert model.features.out_features == twin.features.out_features == 400
    x = np.random.default_rng(1).uniform(size=(2, 1, 28, 28))
    logits = model(x)
    assert logits.shape == (2, 10) and logits.dtype == np.float64
    assert {k: v.shape for k, v in model.intermediates.items()} == {
        "conv1": (2, 8, 26, 26), "pool1": (2, 8, 13, 13), "conv2": (2, 16, 11, 11),
        "features": (2, 400)}
    np.testing.assert_allclose(logits, twin(torch.tensor(x)).detach().numpy(), rtol=1e-13)
    np.testing.assert_array_equal(predict(model, x, batch_size=1), logits.argmax(axis=1))


def test_float32_stays_float32():
    model = CNN(**SMALL)                                   # float32 by default, as torch
    x = np.random.default_rng(2).uniform(size=(2, 1, 12, 12)).astype(np.float32)
    out = model(x)
    dx = model.backward(np.ones_like(out))
    assert out.dtype == dx.dtype == model.features.conv1.weight.grad.dtype == np.float32


def test_gradients_accumulate_across_backward_calls():
    model, _ = _twins(**SMALL)
    x = np.random.default_rng(3).uniform(size=(2, 1, 12, 12))
    g = np.random.default_rng(4).standard_normal((2, 4))
    model(x)
    dx1 = model.backward(g)
    once = {k: p.grad.copy() for k, p in model.named_parameters()}
    model(x)
    dx2 = model.backward(g)
    np.testing.assert_array_equal(dx1, dx2)
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.grad, 2 * once[name], rtol=1e-15)
        assert np.abs(once[name]).max() > 0


def test_the_pools_drop_the_last_row_and_column_of_an_odd_size():
    # 15 -> conv1 13 x 13 -> pool 6 x 6 reads rows and columns 0..11: row/column 12 get nothing
    model, twin = _twins(num_classes=3, channels=(3, 4), image_size=15)
    x = np.random.default_rng(5).uniform(size=(2, 1, 15, 15))
    g = np.random.default_rng(6).standard_normal((2, 3))
    model(x)
    model.backward(g)
    d_a1 = model.intermediate_grads["conv1"]                 # (2, 3, 13, 13)
    assert np.all(d_a1[:, :, 12, :] == 0) and np.all(d_a1[:, :, :, 12] == 0)
    assert np.abs(d_a1[:, :, :12, :12]).max() > 0
    xt = torch.tensor(x)
    twin(xt).backward(torch.tensor(g))
    np.testing.assert_allclose(d_a1, twin.intermediates["conv1"].grad.numpy(), rtol=1e-13,
                               atol=1e-17)


def test_wrong_shapes_are_one_clear_error():
    for model, wrap in ((CNN(), np.zeros), (torch_cnn.CNN(), torch.zeros)):
        with pytest.raises(ValueError, match=r"expects images \(B, 1, 28, 28\), got shape "
                                             r"\(2, 1, 27, 27\)"):
            model(wrap((2, 1, 27, 27)))
    for cls in (CNNFeatures, torch_cnn.CNNFeatures, cmp_cnn.BuiltinCNN):
        with pytest.raises(ValueError, match="image_size=7 is too small"):
            cls(image_size=7)


def test_training_parity_after_20_steps_sgd_and_adam():
    report = run_concept(get("cnn"), dtypes=("float64",), cases=["train-sgd", "train-adam"])
    assert report.passed, report.table()
    twin_diffs = [d for d in report.diffs if d.check == "numpy-vs-torch"]
    names = {d.name for d in twin_diffs if d.case == "train-adam"}
    assert {f"step{k}/loss" for k in range(1, 21)} | {f"step20/param.{k}" for k in KEYS} == names
    assert max(d.max_rel for d in twin_diffs) <= 1e-9          # the bound
    assert {d.check for d in report.diffs} == {"numpy-vs-torch", "torch-vs-builtin"}
    # the parameters moved: parity is not the trivial agreement of untouched weights
    case = get("cnn").case("train-adam")
    state = initial_state(case, cmp_cnn.Trial("float64"), np.random.default_rng(0))
    final, = [d for d in twin_diffs
              if d.case == "train-adam" and d.name == "step20/param.features.conv1.weight"]
    assert np.abs(final.a - state["features.conv1.weight"]).max() > 1e-2


def test_training_batches_are_digits_with_labels_in_the_trial_dtype():
    batches = cmp_cnn.training_batches(get("cnn").case("train-sgd"), cmp_cnn.Trial("float32"))
    assert len(batches) == 20
    x, y = batches[0]
    assert x.shape == (4, 1, 28, 28) and x.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= x.min() and x.max() <= 1.0 and set(y) <= set(range(10))
    assert not np.array_equal(x, batches[1][0])


def test_loss_curves_plot_is_written(tmp_path, monkeypatch):
    monkeypatch.setattr(cmp_cnn, "PLOT_STEPS", 5)
    by_numpy, by_torch = cmp_cnn.loss_curves("float64")
    assert by_numpy.shape == (5,) and 2.0 < by_numpy[0] < 2.6     # about log(10) = 2.30
    np.testing.assert_allclose(by_numpy, by_torch, rtol=1e-13)
    paths = cmp_cnn.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["cnn_training_float64.png", "cnn_training_float32.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


# --- --train -----------------------------------------------------------------------------------
def test_train_both_keeps_the_twins_together():
    data = digits(300, 0, 100, seed=1)
    lines = []
    result = cmp_cnn.train_both(data, epochs=2, batch_size=50, seed=0, log=lines.append)
    assert len(result.losses["numpy"]) == len(result.losses["torch"]) == 12   # 2 epochs x 6
    # float32, identical weights and batches: the first losses agree to float32 rounding
    np.testing.assert_allclose(result.losses["numpy"][:3], result.losses["torch"][:3],
                               rtol=1e-5)
    assert result.losses["numpy"][-1] < result.losses["numpy"][0]
    assert len(result.accuracy["numpy"]) == len(result.accuracy["torch"]) == 2
    assert abs(result.accuracy["numpy"][-1] - result.accuracy["torch"][-1]) <= 0.03
    assert len(lines) == 3 and "test acc numpy" in lines[0]


def test_train_flag_prints_epochs_and_saves_curves(tmp_path, capsys):
    code = cmp_cnn.main(["--train", "--epochs", "1", "--n-train", "200", "--n-val", "0",
                         "--n-test", "100", "--batch-size", "50", "--out", str(tmp_path),
                         "--target", "0"])
    out = capsys.readouterr().out
    assert code == 0
    assert "generated digits: 200 training and 100 test images" in out
    assert "target 0%: reached by both twins" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn_train_accuracy.png",
                                                          "cnn_train_loss.png"]


def test_train_flag_reads_mnist_idx_files(tmp_path, capsys):
    data = digits(60, 0, 20, seed=2)
    for prefix, (x, y) in (("train", data.train), ("t10k", data.test)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte",
                  np.round(np.asarray(x)[:, 0] * 255).astype(np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.asarray(y).astype(np.uint8))
    code = cmp_cnn.main(["--train", "--data", str(tmp_path), "--epochs", "1", "--n-val", "10",
                         "--batch-size", "25", "--out", str(tmp_path), "--target", "0"])
    out = capsys.readouterr().out
    assert code == 0 and f"MNIST from {tmp_path}: 50 training and 20 test images" in out
    code = cmp_cnn.main(["--train", "--data", str(tmp_path / "missing"), "--out",
                         str(tmp_path)])
    assert code == 2 and "no such directory" in capsys.readouterr().err


def test_without_train_it_is_dualgrad_run(monkeypatch):
    import compare.cli
    calls = []
    monkeypatch.setattr(compare.cli, "main", lambda argv: calls.append(argv) or 0)
    assert cmp_cnn.main(["--dtype", "float64", "--plots", "out"]) == 0
    assert calls == [["run", "cnn", "--dtype", "float64", "--plots", "out"]]


def test_verify_accepts_a_copy_and_catches_a_channels_last_unflatten():
    concept = get("cnn")
    quick = dataclasses.replace(concept, cases=[concept.case("small"), concept.case("train-sgd")])

    class MyCNN(CNN):
        pass

    report = verify(quick, MyCNN)
    assert report.passed
    assert {d.case for d in report.diffs} == {"small", "train-sgd"}

    class ChannelsLastCNN(CNN):
        """Unflattens dL/df as (B, H, W, C): the features were flattened (B, C, H, W)."""

        def backward(self, grad_output):
            d_f = self.fc.backward(grad_output)
            b, c, h, w = self.features._pooled_shape
            d_f = d_f.reshape(b, h, w, c).transpose(0, 3, 1, 2).reshape(b, -1)
            return self.features.backward(d_f)

    modules_only = dataclasses.replace(concept, cases=[concept.case("odd-size")])
    report = verify(modules_only, ChannelsLastCNN)
    failed = {d.name for d in report.diffs if not d.passed}
    assert not report.passed
    assert "grad.param.features.conv1.weight" in failed and "grad.param.fc.weight" not in failed
