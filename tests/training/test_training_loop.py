"""Focused tests of the training loop: checkpoint round trips in both twins (torch with
weights_only=True), early stopping at the same epoch, the best weights restored, the metrics'
definitions, and verify with a copy of the model."""
import numpy as np
import pytest
import torch

from compare.concept import Trial
from compare.training import training_loop as cmp
from compare.verify import verify
from numpy_impl.training import training_loop as npt
from torch_impl.training import training_loop as tht


def _models():
    torch.manual_seed(0)
    twin = tht.Classifier(4, 5, 3).double()
    model = npt.Classifier(4, 5, 3).double()
    model.load_state_dict(twin.state_dict())
    return model, twin


def test_numpy_checkpoint_round_trip(tmp_path):
    model, _ = _models()
    path = npt.save_checkpoint(tmp_path / "ck.npz", model, epoch=4, val_loss=0.25)
    loaded = npt.load_checkpoint(path)
    assert loaded["epoch"] == 4 and loaded["val_loss"] == 0.25
    assert list(loaded["state_dict"]) == list(model.state_dict())
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded["state_dict"][name], value)
    other = npt.Classifier(4, 5, 3).double()
    other.load_state_dict(loaded["state_dict"])
    x = np.random.default_rng(0).standard_normal((2, 4))
    np.testing.assert_array_equal(other(x), model(x))


def test_torch_checkpoint_round_trip_with_weights_only(tmp_path):
    _, twin = _models()
    path = tht.save_checkpoint(tmp_path / "ck.pt", twin, epoch=2, val_loss=0.5)
    loaded = torch.load(path, weights_only=True)
    assert loaded["epoch"] == 2 and loaded["val_loss"] == 0.5
    for name, value in twin.state_dict().items():
        assert torch.equal(loaded["state_dict"][name], value)


def test_a_torch_state_dict_moves_into_the_numpy_model_through_checkpoints(tmp_path):
    model, twin = _models()
    with torch.no_grad():
        twin.fc1.weight.add_(1.0)
    path = tht.save_checkpoint(tmp_path / "ck.pt", twin, epoch=0, val_loss=1.0)
    model.load_state_dict(tht.load_checkpoint(path)["state_dict"])
    np.testing.assert_array_equal(model.fc1.weight.data, twin.fc1.weight.detach().numpy())


@pytest.mark.parametrize("case_name, stopped, best", [("sgd-momentum-early-stop", 3, 0),
                                                      ("patience-1", 1, 0)])
def test_early_stopping_triggers_at_the_same_epoch_in_both(case_name, stopped, best):
    case = next(c for c in cmp.CASES if c.name == case_name)
    outcome = cmp.run(case, Trial("float64", seed=0))
    for side in (outcome.numpy, outcome.torch):
        assert int(side["stopped_epoch"]) == stopped and int(side["best_epoch"]) == best
        assert len(side["history/val_loss"]) == stopped + 1
        patience = case.options.get("patience", cmp.TRAINER["patience"])
        # the epochs after the best one did not improve on it, and there were `patience`
        val = side["history/val_loss"]
        assert np.all(val[best + 1:] >= val[best]) and len(val) - 1 - best == patience
    np.testing.assert_allclose(outcome.numpy["history/val_loss"],
                               outcome.torch["history/val_loss"], rtol=1e-12)


def test_fit_restores_the_best_checkpoint_and_test_uses_it(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4))
    y = rng.integers(0, 3, 40)
    model = npt.Classifier(4, 8, 3, lr=0.5, momentum=0.9).double()
    trainer = npt.Trainer(max_epochs=6, batch_size=8, patience=2, checkpoint_dir=tmp_path)
    orders = np.stack([rng.permutation(30) for _ in range(6)])
    history = trainer.fit(model, (x[:30], y[:30]), (x[30:], y[30:]), orders)
    best = npt.load_checkpoint(tmp_path / "best.npz")
    assert best["epoch"] == trainer.best_epoch == int(np.argmin(history["val_loss"]))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, best["state_dict"][name])
    result = trainer.test(model, (x[30:], y[30:]))
    assert result["test_loss"] == pytest.approx(best["val_loss"], rel=1e-15)
    assert all(0.0 <= a <= 1.0 for a in history["train_acc"] + history["val_acc"])


def test_accuracy_known_answer():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [1.0, 0.0, 5.0], [4.0, 0.0, 0.0]])
    y = np.array([0, 1, 0, 2])
    assert npt.accuracy(logits, y) == 0.5
    assert tht.accuracy(torch.tensor(logits), torch.tensor(y)) == 0.5


def test_train_loss_is_the_batch_size_weighted_mean():
    """With lr = 0 nothing moves: the epoch's train loss is the full-set loss exactly."""
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((23, 4)), rng.integers(0, 3, 23)
    model = npt.Classifier(4, 6, 3, lr=0.0).double()
    trainer = npt.Trainer(max_epochs=1, batch_size=5, checkpoint_dir=cmp.SCRATCH or ".")
    history = trainer.fit(model, (x, y), (x, y), rng.permutation(23)[None, :])
    assert history["train_loss"][0] == pytest.approx(history["val_loss"][0], rel=1e-14)
    assert history["train_acc"][0] == pytest.approx(history["val_acc"][0], rel=1e-15)


def test_a_copy_of_the_model_verifies():
    class MyClassifier(npt.Classifier):
        pass
    report = verify("training_loop", MyClassifier)
    assert report.passed, report.table()
    assert any(d.name == "history/val_loss" for d in report.diffs)
