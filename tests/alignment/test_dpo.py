"""Focused tests of the DPO twins: masked sequence log-probabilities against a loop, the loss
against the DPO paper's formula written in torch (and cDPO, IPO), TRL's conventions (argument
order, per-pair losses, detached rewards), the gradient outside the responses, training (the
margin grows; IPO's settles near β/(2β) = 1/2), parity, plots, the script and verify."""
import dataclasses
import inspect

import numpy as np
import pytest
import torch

import compare.alignment.dpo as cmp_dpo
from compare.cli import main
from compare.concept import Trial
from compare.registry import get
from compare.runner import run_concept
from compare.verify import verify
from numpy_impl.alignment.dpo import (
    DPOLoss,
    dpo_loss,
    sequence_log_probs,
    sequence_log_probs_backward,
)
from torch_impl.alignment import dpo as torch_dpo


def _batch(seed=0, pairs=3, steps=5, vocab=6):
    rng = np.random.default_rng(seed)
    rows = 2 * pairs
    return (rng.standard_normal((rows, steps, vocab)), rng.standard_normal((rows, steps, vocab)),
            rng.integers(0, vocab, (rows, steps)), cmp_dpo.response_mask(rows, steps)(rng))


def test_sequence_log_probs_against_a_loop_and_zero_gradient_outside_the_response():
    logits, _, labels, mask = _batch()
    logps, cache = sequence_log_probs(logits, labels, mask)
    expected = np.zeros(len(logits))
    for b in range(len(logits)):
        for t in range(logits.shape[1]):
            if mask[b, t]:
                row = logits[b, t]
                expected[b] += row[labels[b, t]] - np.log(np.sum(np.exp(row)))
    np.testing.assert_allclose(logps, expected, rtol=1e-13)
    assert mask.any(axis=1).all() and (~mask).any(axis=1).all()  # responses and prompts
    g = np.random.default_rng(1).standard_normal(len(logits))
    dz = sequence_log_probs_backward(g, cache)
    assert np.all(dz[~mask] == 0)                                 # prompt and padding
    np.testing.assert_allclose(dz.sum(-1), 0.0, atol=1e-14)       # softmax: rows sum to 0
    t = torch.tensor(logits, requires_grad=True)
    torch_dpo.sequence_log_probs(t, torch.tensor(labels), torch.tensor(mask)).backward(
        torch.tensor(g))
    np.testing.assert_allclose(dz, t.grad.numpy(), rtol=1e-13, atol=1e-16)


def test_the_loss_is_the_dpo_papers_formula_with_trls_conventions():
    rng = np.random.default_rng(2)
    pc, pr, rc, rr = rng.normal(-10.0, 3.0, (4, 5))
    beta = 0.3
    losses, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=beta)
    assert losses.shape == chosen.shape == (5,)                    # per pair, not reduced
    # DPO paper, eq. 7, written directly in torch on the same numbers
    t = [torch.tensor(a) for a in (pc, pr, rc, rr)]
    paper = -torch.log(torch.sigmoid(beta * ((t[0] - t[2]) - (t[1] - t[3]))))
    np.testing.assert_allclose(losses, paper.numpy(), rtol=1e-13)
    np.testing.assert_allclose(chosen, beta * (pc - rc), rtol=1e-15)
    np.testing.assert_allclose(rejected, beta * (pr - rr), rtol=1e-15)
    # the order is TRL's: policy chosen, policy rejected, reference chosen, reference rejected.
    # Swapping the middle two leaves h (so the loss) unchanged: only the rewards tell.
    swapped, swapped_chosen, _ = dpo_loss(pc, rc, pr, rr, beta=beta)
    np.testing.assert_allclose(swapped, losses, rtol=1e-13)
    np.testing.assert_allclose(swapped_chosen, beta * (pc - pr), rtol=1e-15)
    flipped, _, _ = dpo_loss(pr, pc, rr, rc, beta=beta)          # the pair the other way
    np.testing.assert_allclose(flipped, -torch.log(torch.sigmoid(-beta * (
        (t[0] - t[2]) - (t[1] - t[3])))).numpy(), rtol=1e-13)
    torch_losses, torch_chosen, _ = torch_dpo.dpo_loss(
        *[a.clone().requires_grad_() for a in t], beta=beta)
    np.testing.assert_allclose(torch_losses.detach().numpy(), losses, rtol=1e-13)
    assert torch_losses.requires_grad and not torch_chosen.requires_grad  # rewards detached


def test_label_smoothing_and_ipo_formulas():
    rng = np.random.default_rng(3)
    pc, pr, rc, rr = rng.normal(-5.0, 2.0, (4, 6))
    h = (pc - pr) - (rc - rr)
    beta, eps = 0.5, 0.2
    t = torch.tensor(beta * h)
    cdpo = -(1 - eps) * torch.log(torch.sigmoid(t)) - eps * torch.log(torch.sigmoid(-t))
    np.testing.assert_allclose(dpo_loss(pc, pr, rc, rr, beta, eps)[0], cdpo.numpy(), rtol=1e-13)
    # ε = 1/2: the loss cannot tell chosen from rejected
    half, _, _ = dpo_loss(pc, pr, rc, rr, beta, 0.5)
    np.testing.assert_allclose(half, dpo_loss(pr, pc, rr, rc, beta, 0.5)[0], rtol=1e-14)
    ipo, _, _ = dpo_loss(pc, pr, rc, rr, beta, loss_type="ipo")
    np.testing.assert_allclose(ipo, (h - 1.0) ** 2, rtol=1e-14)   # 1/(2β) = 1


def test_policy_equal_to_reference_gives_log_2_and_zero_rewards():
    logits, _, labels, mask = _batch(4)
    loss_fn = DPOLoss(beta=0.25)
    loss, chosen, rejected = loss_fn(logits, logits.copy(), labels, mask)
    np.testing.assert_allclose(loss, np.log(2.0), rtol=1e-15)
    assert np.all(chosen == 0) and np.all(rejected == 0)
    d_policy, d_reference = loss_fn.backward((np.array(1.0), None, None))
    np.testing.assert_allclose(d_policy, -d_reference, rtol=1e-15)  # h's signs
    # dL/dπ_c = β (-σ(0)) / B = -β / (2B) for each chosen row's log-probability
    _, cache = sequence_log_probs(logits, labels, mask)
    expected = sequence_log_probs_backward(np.repeat([-0.25 / 6, 0.25 / 6], 3), cache)
    np.testing.assert_allclose(d_policy, expected, rtol=1e-14)


def test_errors_are_one_sentence():
    for cls in (DPOLoss, torch_dpo.DPOLoss):
        with pytest.raises(ValueError, match="unknown loss_type 'hinge'"):
            cls(loss_type="hinge")
        with pytest.raises(ValueError, match=r"label_smoothing must be in \[0, 0.5\]"):
            cls(label_smoothing=0.7)
    with pytest.raises(ValueError, match=r"one shape \(2B, T, V\)"):
        DPOLoss()(np.zeros((3, 2, 4)), np.zeros((3, 2, 4)), np.zeros((3, 2), int),
                  np.ones((3, 2), bool))


def test_data_masks_cover_exactly_the_response_tokens():
    chosen, rejected, c_len, r_len = cmp_dpo.preference_sequences(16, seed=1)
    tokens, labels, mask = cmp_dpo.concatenated_batch(chosen, rejected, c_len, r_len, 2)
    assert tokens.shape == labels.shape == mask.shape == (32, 6)
    np.testing.assert_array_equal(mask.sum(1), np.concatenate([c_len, r_len]))
    assert set(labels[:16][mask[:16]]) <= set(cmp_dpo.GOOD_TOKENS)
    assert not set(labels[16:][mask[16:]]) & set(cmp_dpo.GOOD_TOKENS)
    assert np.all(labels[~mask][:, None] >= 0) and np.all(labels[:, 2:][~mask[:, 2:]] == 0)
    np.testing.assert_array_equal(chosen[:, :2], rejected[:, :2])   # one prompt per pair


def _margins(values, steps):
    return np.array([np.mean(values[f"step{k}/chosen_rewards"]
                             - values[f"step{k}/rejected_rewards"]) for k in range(1, steps + 1)])


def test_training_parity_and_the_margin_grows():
    concept = get("dpo")
    report = run_concept(concept, dtypes=("float64",),
                         cases=["train-adam", "train-sgd", "train-ipo"])
    assert report.passed, report.table()
    twin = [d for d in report.diffs if d.check == "numpy-vs-torch"]
    assert max(d.max_rel for d in twin) < 1e-12
    assert {d.name for d in twin if d.case == "train-adam"} == {
        f"step{k}/{n}" for k in range(1, 21) for n in ("loss", "chosen_rewards",
                                                        "rejected_rewards")} | {
        "step20/param.table.weight"}
    for name in ("train-adam", "train-sgd"):
        outcome = cmp_dpo.run(concept.case(name), Trial("float64"))
        margins = _margins(outcome.numpy, 20)
        assert margins[0] == 0                                   # policy == reference
        assert margins[-1] > 2.0 and np.all(np.diff(margins[:5]) > 0)
        np.testing.assert_allclose(margins, _margins(outcome.torch, 20), rtol=1e-12)
        assert outcome.numpy["step20/loss"] < 0.2 * outcome.numpy["step1/loss"]


def test_ipo_holds_the_margin_near_one_half_while_dpo_keeps_pushing():
    curves = cmp_dpo.train_side_by_side(steps=200, out=None)
    assert curves["margin_numpy"][-1] > 5.0                       # sigmoid: unbounded
    case = cmp_dpo._training("ipo", "Adam", steps=200, beta=0.5, loss_type="ipo")
    trial = Trial("float64")
    values = cmp_dpo.train_numpy(DPOLoss(beta=0.5, loss_type="ipo"), cmp_dpo._policy_state(
        case, trial), cmp_dpo._batches(case, trial), case.options, np.dtype(np.float64))
    # IPO's target h = 1/(2β) per pair is a reward margin of β h = 1/2
    assert abs(np.mean(_margins(values, 200)[-50:]) - 0.5) < 0.1


def test_plots_are_written(tmp_path):
    paths = cmp_dpo.extra_plots(tmp_path, seed=0)
    assert [p.name for p in paths] == ["dpo_margin.png", "dpo_chosen_rewards.png",
                                       "dpo_rejected_rewards.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_script_runs_the_comparison_then_trains_both(capsys):
    assert cmp_dpo.script(["--steps", "20", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "alignment/dpo: agree" in out and "margin numpy  margin torch" in out
    assert cmp_dpo.script(["--steps", "-1"]) == 2


class MaskForgottenInBackward(DPOLoss):
    """The gradient leaks into prompt and padding positions: the backward ignores the mask."""

    def backward(self, grad_output):
        from numpy_impl.alignment.dpo import dpo_loss_backward
        b = self._h.shape[0]
        d = dpo_loss_backward(np.broadcast_to(np.asarray(grad_output[0]) / b, (b,)), self._h,
                              self.beta, self.label_smoothing, self.loss_type)
        grads = []
        for cache, (first, second) in ((self._policy_cache, d[:2]),
                                       (self._reference_cache, d[2:])):
            logp, labels, mask = cache
            grads.append(sequence_log_probs_backward(np.concatenate([first, second]),
                                                     (logp, labels, np.ones_like(mask))))
        return tuple(grads)


def test_verify_accepts_a_copy_and_names_a_gradient_leaking_outside_the_response(tmp_path,
                                                                                  capsys):
    concept = get("dpo")
    quick = dataclasses.replace(concept, cases=[concept.case("ipo"), concept.case("train-sgd")])

    class MyDPOLoss(DPOLoss):
        pass

    assert verify(quick, MyDPOLoss).passed
    report = verify(quick, MaskForgottenInBackward)
    failed = {d.name for d in report.failures}
    assert {"grad.input.policy_logits", "grad.input.reference_logits"} <= failed
    assert not {"out.0", "out.1", "out.2"} & failed                # the forward is right
    assert "step20/param.table.weight" in failed                   # and training drifts
    path = tmp_path / "mine.py"
    path.write_text("import numpy as np\nfrom numpy_impl.alignment.dpo import DPOLoss, "
                    "sequence_log_probs_backward\n\n\n"
                    + inspect.getsource(MaskForgottenInBackward))
    assert main(["verify", "dpo", f"{path}:MaskForgottenInBackward"]) == 1
    assert "grad.input.policy_logits" in capsys.readouterr().out
