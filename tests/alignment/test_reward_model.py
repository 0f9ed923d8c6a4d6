"""Focused tests of the reward-model twins: the loss against the formula and against torch's
logsigmoid / BCE-with-logits, stability at score differences of ±100, the margin, names, the
data, training (held-out accuracy > 90 %, the same in both twins), parity, plots, the script
and verify (a copy passes, a wrong backward is named)."""
import dataclasses
import inspect
import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import compare.alignment.reward_model as cmp_rm
from compare.cli import main
from compare.concept import Trial
from compare.registry import get
from compare.runner import run_concept
from compare.verify import verify
from numpy_impl.alignment.reward_model import (
    RewardModel,
    bradley_terry_backward,
    bradley_terry_forward,
)
from torch_impl.alignment import reward_model as torch_rm


def _twins(seed=0, **init):
    torch.manual_seed(seed)
    twin = torch_rm.RewardModel(**init).double()
    model = RewardModel(**init).double()
    model.load_state_dict(twin.state_dict())
    return model, twin


def test_loss_is_the_bradley_terry_formula_and_torchs_logsigmoid_and_bce():
    model, twin = _twins(in_features=3, hidden_features=4, margin=0.25)
    rng = np.random.default_rng(0)
    chosen, rejected = rng.standard_normal((2, 7, 3))
    s = {k: np.asarray(v) for k, v in model.state_dict().items()}
    score = lambda x: np.tanh(x @ s["fc1.weight"].T + s["fc1.bias"]) @ s["fc2.weight"][0]  # noqa
    d = score(chosen) - score(rejected) - 0.25
    expected = np.mean(np.log(1.0 + np.exp(-d)))
    np.testing.assert_allclose(model(chosen, rejected), expected, rtol=1e-14)
    np.testing.assert_allclose(model.intermediates["r_chosen"], score(chosen), rtol=1e-14)
    d_t = torch.tensor(d)
    np.testing.assert_allclose(-F.logsigmoid(d_t).mean().item(), expected, rtol=1e-14)
    bce = F.binary_cross_entropy_with_logits(d_t, torch.ones_like(d_t))
    np.testing.assert_allclose(bce.item(), expected, rtol=1e-14)
    out = twin(torch.tensor(chosen), torch.tensor(rejected))
    np.testing.assert_allclose(out.item(), expected, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_score_differences_of_100_stay_finite_and_exact(dtype):
    d = np.array([-1000.0, -100.0, 0.0, 100.0, 1000.0], dtype=dtype)
    losses, cache = bradley_terry_forward(d, np.zeros_like(d), reduction="none")
    assert losses.dtype == dtype
    np.testing.assert_allclose(losses, [1000.0, 100.0, np.log(2.0), 0.0, 0.0], atol=1e-30,
                               rtol=1e-7)
    assert 0 < losses[3] < 1e-40 or dtype == np.float32     # e^-100 itself, in float64
    d_chosen, d_rejected = bradley_terry_backward(np.ones(5, dtype), cache)
    np.testing.assert_allclose(d_chosen, [-1.0, -1.0, -0.5, 0.0, 0.0], atol=1e-30)
    np.testing.assert_array_equal(d_rejected, -d_chosen)
    with np.errstate(over="ignore", divide="ignore"):        # what the softplus form avoids
        naive = -np.log(1.0 / (1.0 + np.exp(np.float32(104.0))))
    assert np.isinf(naive) or dtype == np.float64


def test_margin_shifts_the_difference_and_the_gradient_is_sigma():
    rc, rr = np.array([2.0, -1.0]), np.array([1.0, 0.5])
    loss, cache = bradley_terry_forward(rc, rr, margin=1.0)
    d = np.array([0.0, -2.5])
    np.testing.assert_allclose(loss, np.mean(np.log1p(np.exp(-d))), rtol=1e-15)
    d_chosen, _ = bradley_terry_backward(np.array(1.0), cache)
    np.testing.assert_allclose(d_chosen, -0.5 / (1.0 + np.exp(d)), rtol=1e-15)


def test_names_shapes_and_the_bias_free_head():
    model, twin = _twins()
    keys = ["fc1.weight", "fc1.bias", "fc2.weight"]
    assert list(model.state_dict()) == list(twin.state_dict()) == keys
    assert list(cmp_rm.BuiltinRewardModel().state_dict()) == keys
    assert model.fc2.weight.shape == (1, 32) and model.fc2.bias is None
    assert RewardModel().fc1.weight.data.dtype == np.float32
    with pytest.raises(ValueError, match=r"expects features \(N, 8\), got shape \(3, 5\)"):
        model(np.zeros((3, 5)), np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"expects features \(N, 8\), got shape \(3, 5\)"):
        twin(torch.zeros(3, 5), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="same shape"):
        model(np.zeros((3, 8)), np.zeros((2, 8)))
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        RewardModel(reduction="avg")


def test_parameter_gradients_sum_over_both_responses_and_accumulate():
    model, _ = _twins(in_features=3, hidden_features=4)
    rng = np.random.default_rng(1)
    chosen, rejected = rng.standard_normal((2, 5, 3))
    model(chosen, rejected)
    d_chosen, d_rejected = model.backward(np.array(1.0))
    once = {k: p.grad.copy() for k, p in model.named_parameters()}
    # swapping the pair flips the sign of d; at d = 0 the gradient is -1/2 per pair (mean)
    same = RewardModel(in_features=3, hidden_features=4).double()
    same.load_state_dict(model.state_dict())
    same(chosen, chosen)
    dc, dr = same.backward(np.array(1.0))
    np.testing.assert_allclose(same.intermediate_grads["r_chosen"], -0.5 / 5, rtol=1e-15)
    np.testing.assert_allclose(dc + dr, 0.0, atol=1e-15)         # the same rows cancel
    model(chosen, rejected)
    model.backward(np.array(1.0))
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[name], rtol=1e-15)


def test_training_data_labels_are_noisy_and_heldout_is_ordered_by_the_true_reward():
    data = cmp_rm.preference_data(n_train=4000, n_test=300, seed=3)
    assert data.chosen.shape == (4000, 8) and data.test_rejected.shape == (300, 8)
    assert 0.85 < data.label_agreement < 0.98              # Bradley–Terry noise, beta = 4
    gap = cmp_rm.true_reward(data.test_chosen) - cmp_rm.true_reward(data.test_rejected)
    assert np.all(gap > 0)
    again = cmp_rm.preference_data(n_train=4000, n_test=300, seed=3)
    np.testing.assert_array_equal(again.chosen, data.chosen)


def test_heldout_accuracy_beats_90_percent_in_both_twins_with_the_same_number():
    curves = cmp_rm.train_side_by_side(steps=300, every=100, out=io.StringIO())
    assert curves["acc_numpy"][0] < 0.6                      # untrained: near chance
    assert curves["acc_numpy"][-1] > 0.9
    np.testing.assert_array_equal(curves["acc_numpy"], curves["acc_torch"])
    np.testing.assert_allclose(curves["loss_numpy"], curves["loss_torch"], rtol=1e-4)
    assert np.mean(curves["loss_numpy"][-50:]) < 0.5 * np.mean(curves["loss_numpy"][:10])


def test_training_parity_over_50_steps_and_the_same_heldout_accuracy():
    concept = get("reward_model")
    report = run_concept(concept, dtypes=("float64",), cases=["train-adam", "train-sgd"])
    assert report.passed, report.table()
    twin = [d for d in report.diffs if d.check == "numpy-vs-torch"]
    names = {d.name for d in twin if d.case == "train-adam"}
    assert names == {f"step{k}/loss" for k in range(1, 51)} | {
        "step50/param.fc1.weight", "step50/param.fc1.bias", "step50/param.fc2.weight",
        "heldout.margin"}
    assert max(d.max_rel for d in twin) < 1e-12
    outcome = cmp_rm.run(concept.case("train-sgd"), Trial("float64"))
    acc_numpy = np.mean(outcome.numpy["heldout.margin"] > 0)
    assert acc_numpy == np.mean(outcome.torch["heldout.margin"] > 0) and acc_numpy > 0.85
    assert outcome.numpy["step50/loss"] < 0.6 * outcome.numpy["step1/loss"]


def test_plots_are_written(tmp_path):
    paths = cmp_rm.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["reward_model_loss.png", "reward_model_accuracy.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_script_runs_the_comparison_then_trains_both(capsys):
    assert cmp_rm.script(["--steps", "20", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "alignment/reward_model: agree" in out
    assert "loss numpy  loss torch  acc numpy  acc torch" in out
    assert cmp_rm.script(["--steps", "0"]) == 2


class SignFlippedRejected(RewardModel):
    """dL/dr_rejected should be -dL/dd; this one passes +dL/dd."""

    def backward(self, grad_output):
        d_chosen, _ = bradley_terry_backward(grad_output, self._cache)
        self.intermediate_grads = {"r_chosen": d_chosen, "r_rejected": d_chosen}
        dx = self.score_backward(np.concatenate([d_chosen, d_chosen]))
        n = d_chosen.shape[0]
        return dx[:n], dx[n:]


def test_verify_accepts_a_copy_and_names_a_wrong_backward(tmp_path, capsys):
    concept = get("reward_model")
    quick = dataclasses.replace(concept, cases=[concept.case("margin"),
                                                concept.case("train-adam")])

    class MyRewardModel(RewardModel):
        pass

    assert verify(quick, MyRewardModel).passed
    report = verify(quick, SignFlippedRejected)
    failed = {d.name for d in report.failures}
    assert {"grad.input.rejected", "grad.inter.r_rejected", "grad.param.fc1.weight"} <= failed
    assert "grad.input.chosen" not in failed and "out" not in failed
    assert any(name.startswith("step") for name in failed)   # and training drifts apart
    path = tmp_path / "mine.py"
    path.write_text("import numpy as np\n"
                    "from numpy_impl.alignment.reward_model import RewardModel, "
                    "bradley_terry_backward\n\n\n" + inspect.getsource(SignFlippedRejected))
    assert main(["verify", "reward_model", f"{path}:SignFlippedRejected"]) == 1
    assert "grad.input.rejected" in capsys.readouterr().out
