"""Focused tests of the policy-gradient twins: GAE against its closed forms, the advantage
normalization, PPO's clipped objective against the paper's formula written in torch (clip
fraction, KL, no gradient through clipped samples), REINFORCE's gradient, inverse-CDF
sampling, the environments, training parity over 30 updates, learning (the best arm, the
goal), plots, the script and verify."""
import dataclasses
import inspect

import numpy as np
import pytest
import torch

import compare.alignment.policy_gradient as cmp_pg
from compare.cli import main
from compare.concept import Trial
from compare.registry import get
from compare.runner import run_concept
from compare.verify import verify
from numpy_impl.alignment.policy_gradient import (
    ActorCritic,
    PPOLoss,
    ReinforceLoss,
    gae,
    normalize_backward,
    normalize_forward,
    sample_actions,
)
from torch_impl.alignment import policy_gradient as torch_pg


def _rollout(seed=0, steps=6, envs=3):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((steps, envs)), rng.standard_normal((steps, envs)),
            (rng.random((steps, envs)) < 0.3).astype(float), rng.standard_normal(envs))


def test_gae_closed_forms_lambda_1_is_the_discounted_return_and_lambda_0_the_td_error():
    rewards, values, dones, last = _rollout()
    gamma = 0.9
    steps, envs = rewards.shape
    returns = np.zeros_like(rewards)                    # Σ_k γ^k r_{t+k}, cut at episode ends
    for e in range(envs):
        running = last[e]
        for t in reversed(range(steps)):
            running = rewards[t, e] + gamma * (1 - dones[t, e]) * running
            returns[t, e] = running
    advantages, targets = gae(rewards, values, dones, last, gamma, lam=1.0)
    np.testing.assert_allclose(advantages, returns - values, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(targets, returns, rtol=1e-13)
    next_values = np.vstack([values[1:], last])
    td, _ = gae(rewards, values, dones, last, gamma, lam=0.0)
    np.testing.assert_allclose(td, rewards + gamma * (1 - dones) * next_values - values,
                               rtol=1e-13, atol=1e-15)
    a_t, g_t = torch_pg.gae(*(torch.tensor(x) for x in (rewards, values, dones, last)), gamma,
                            0.95)
    a_n, g_n = gae(rewards, values, dones, last, gamma, 0.95)
    np.testing.assert_allclose(a_n, a_t.numpy(), rtol=1e-13)
    np.testing.assert_allclose(g_n, g_t.numpy(), rtol=1e-13)


def test_normalization_standardizes_and_its_gradient_is_shift_invariant():
    a = np.random.default_rng(1).normal(3.0, 2.0, 10)
    normalized, cache = normalize_forward(a)
    np.testing.assert_allclose(normalized.mean(), 0.0, atol=1e-15)
    np.testing.assert_allclose(normalized.std(ddof=1), 1.0, rtol=1e-8)   # up to the 1e-8
    g = np.random.default_rng(2).standard_normal(10)
    da = normalize_backward(g, cache)
    np.testing.assert_allclose(da.sum(), 0.0, atol=1e-14)      # Â(A + c) = Â(A)
    t = torch.tensor(a, requires_grad=True)
    torch_pg.normalize(t).backward(torch.tensor(g))
    np.testing.assert_allclose(da, t.grad.numpy(), rtol=1e-12)
    assert normalize_forward(a, enabled=False)[0] is a


def _ppo_batch(ratios, advantages):
    """Logits, actions and old log-probabilities that give exactly these ratios."""
    rng = np.random.default_rng(3)
    n = len(ratios)
    logits, actions = rng.standard_normal((n, 3)), rng.integers(0, 3, n)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    old = logp[np.arange(n), actions] - np.log(ratios)
    return logits, rng.standard_normal(n), actions, old, np.asarray(advantages, float), \
        rng.standard_normal(n)


def test_ppo_is_the_clipped_objective_of_the_paper_with_its_kl_and_clip_fraction():
    ratios = np.array([0.5, 0.9, 1.0, 1.1, 1.5, 1.5])
    advantages = [1.0, -2.0, 0.5, 1.5, 1.0, -1.0]
    logits, values, actions, old, adv, returns = _ppo_batch(ratios, advantages)
    loss_fn = PPOLoss(clip_eps=0.2, value_coef=0.5, entropy_coef=0.0,
                      normalize_advantages=False)
    loss, policy_loss, value_loss, entropy, kl, clip_fraction = loss_fn(
        logits, values, actions, old, adv, returns)
    # Schulman et al. (2017), eq. 7, written directly in torch on the same numbers
    r, a = torch.tensor(ratios), torch.tensor(adv)
    paper = -torch.mean(torch.min(r * a, torch.clamp(r, 0.8, 1.2) * a))
    np.testing.assert_allclose(policy_loss, paper.item(), rtol=1e-13)
    np.testing.assert_allclose(clip_fraction, 3 / 6)                 # 0.5, 1.5, 1.5
    np.testing.assert_allclose(kl, np.mean(ratios - 1 - np.log(ratios)), rtol=1e-12)
    np.testing.assert_allclose(value_loss, 0.5 * np.mean((values - returns) ** 2), rtol=1e-14)
    np.testing.assert_allclose(loss, policy_loss + 0.5 * value_loss, rtol=1e-14)
    d_logits, d_values, d_old, d_adv, d_returns = loss_fn.backward((np.array(1.0),))
    # no policy gradient where the clipped branch is the minimum and flat: ρ > 1+ε with A > 0
    # (row 4), ρ < 1-ε with A > 0 is the unclipped branch (row 0) and keeps its gradient
    np.testing.assert_array_equal(d_logits[4], 0.0)
    np.testing.assert_array_equal(d_old[4], 0.0)
    assert np.abs(d_logits[0]).max() > 0 and np.abs(d_logits[5]).max() > 0
    np.testing.assert_allclose(d_logits.sum(1), 0.0, atol=1e-15)     # softmax rows
    np.testing.assert_allclose(d_returns, -d_values, rtol=1e-15)


def test_reinforce_gradient_is_onehot_minus_pi_times_the_advantage():
    rng = np.random.default_rng(4)
    logits, actions = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    adv, values, returns = rng.standard_normal((3, 5))
    loss_fn = ReinforceLoss(value_coef=0.5, entropy_coef=0.0, normalize_advantages=False)
    loss_fn(logits, values, actions, np.zeros(5), adv, returns)
    d_logits, _, d_old, d_adv, _ = loss_fn.backward((np.array(1.0),))
    pi = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    np.testing.assert_allclose(d_logits, -(np.eye(3)[actions] - pi) * adv[:, None] / 5,
                               rtol=1e-13)
    assert np.all(d_old == 0)                                         # not an input it uses
    logp = np.log(pi[np.arange(5), actions])
    np.testing.assert_allclose(d_adv, -logp / 5, rtol=1e-13)


def test_sampling_is_the_inverse_cdf_and_the_twins_agree():
    logits = np.log(np.array([[0.1, 0.2, 0.7]] * 5))
    u = np.array([0.05, 0.1 + 1e-9, 0.29, 0.31, 0.999999999])
    np.testing.assert_array_equal(sample_actions(logits, u), [0, 1, 1, 2, 2])
    rng = np.random.default_rng(5)
    logits, u = rng.standard_normal((200, 4)), rng.random(200)
    np.testing.assert_array_equal(
        sample_actions(logits, u),
        torch_pg.sample_actions(torch.tensor(logits), torch.tensor(u)).numpy())


def test_grid_world_moves_walls_slips_and_goal():
    env = cmp_pg.GridWorld(envs=3, size=4, slip=0.1)
    obs = env.reset()
    assert obs.shape == (3, 16) and np.all(obs[:, 0] == 1)
    no_slip, zeros = np.ones(3), np.zeros(3, dtype=int)
    _, rewards, _ = env.step(np.array([0, 1, 2]), None, no_slip, zeros)  # up: a wall
    np.testing.assert_array_equal(env.cell, [0, 1, 4])
    assert np.all(rewards == 0)
    env.step(np.array([1, 1, 1]), None, np.array([1.0, 0.05, 1.0]), np.array([0, 2, 0]))
    np.testing.assert_array_equal(env.cell, [1, 5, 5])                   # env 1 slipped down
    env.cell = np.array([11, 14, 0])
    obs, rewards, dones = env.step(np.array([2, 1, 3]), None, no_slip, zeros)
    np.testing.assert_array_equal(rewards, [1.0, 1.0, 0.0])              # both reach 15
    np.testing.assert_array_equal(dones, [1.0, 1.0, 0.0])
    np.testing.assert_array_equal(env.cell, [0, 0, 0])                   # and start over
    bandit = cmp_pg.Bandit(envs=2)
    _, rewards, dones = bandit.step(np.array([2, 0]), np.array([0.2, -1.0]), None, None)
    np.testing.assert_allclose(rewards, [1.0 + 0.1, 0.2 - 0.5])
    assert np.all(dones == 1)


def test_training_parity_over_30_updates():
    concept = get("policy_gradient")
    names = ["bandit-reinforce", "bandit-ppo", "grid-reinforce", "grid-ppo"]
    report = run_concept(concept, dtypes=("float64",), cases=names)
    assert report.passed, report.table()
    twin = [d for d in report.diffs if d.check == "numpy-vs-torch"]
    ppo_names = {d.name for d in twin if d.case == "grid-ppo"}
    for k in (1, 30):
        assert {f"update{k}/{n}" for n in ("actions", "return", "advantages", "loss",
                                           "policy_loss", "value_loss", "entropy",
                                           "approx_kl", "clip_fraction",
                                           "param.policy.weight", "param.value.bias")} \
            <= ppo_names
    assert max(d.max_rel for d in twin if "loss" not in d.name and "kl" not in d.name) < 1e-12
    advantages = [d for d in twin if d.case == "grid-ppo" and d.name == "update30/advantages"]
    assert advantages[0].a.shape == (12, 8)


def _final_policy(outcome_values, obs):
    weight = outcome_values["update30/param.policy.weight"]
    bias = outcome_values["update30/param.policy.bias"]
    logits = obs @ weight.T + bias
    return np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)


@pytest.mark.parametrize("algorithm", ["reinforce", "ppo"])
def test_the_policy_learns_the_best_arm_and_reaches_the_goal(algorithm):
    concept = get("policy_gradient")
    bandit = cmp_pg.run(concept.case(f"bandit-{algorithm}"), Trial("float64"))
    for values in (bandit.numpy, bandit.torch):
        probs = _final_policy(values, np.ones((1, 1)))[0]
        assert probs.argmax() == 2 and probs[2] > 0.8               # the arm paying 1.0
    grid = cmp_pg.run(concept.case(f"grid-{algorithm}"), Trial("float64"))
    for values in (grid.numpy, grid.torch):
        env, reached = cmp_pg.GridWorld(envs=1, slip=0.0), False
        env.reset()
        for _ in range(6):                                           # the shortest path
            greedy = _final_policy(values, env.observe()).argmax(-1)
            _, _, done = env.step(greedy, None, np.ones(1), np.zeros(1, dtype=int))
            if done[0]:
                reached = True
                break
        assert reached, "the greedy policy did not reach the goal in 6 moves"
        returns = [float(values[f"update{k}/return"]) for k in range(1, 31)]
        assert np.mean(returns[-5:]) > 1.0 > np.mean(returns[:5])


def test_plots_are_written(tmp_path, monkeypatch):
    monkeypatch.setattr(cmp_pg, "PLOT_UPDATES", 10)
    paths = cmp_pg.extra_plots(tmp_path, seed=0)
    assert sorted(p.name for p in paths) == sorted(
        ["policy_gradient_return_bandit_reinforce.png", "policy_gradient_return_bandit_ppo.png",
         "policy_gradient_return_grid_reinforce.png", "policy_gradient_return_grid_ppo.png",
         "policy_gradient_approx_kl.png", "policy_gradient_clip_fraction.png"])
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_script_runs_the_comparison_then_trains_both(capsys):
    assert cmp_pg.script(["--updates", "5", "--dtype", "float64"]) == 0
    out = capsys.readouterr().out
    assert "alignment/policy_gradient: agree" in out and "KL numpy    KL torch" in out
    assert cmp_pg.script(["--updates", "0"]) == 2


def test_the_network_names_and_shapes():
    twin = torch_pg.ActorCritic(16, 4)
    model = ActorCritic(16, 4)
    keys = ["policy.weight", "policy.bias", "value.weight", "value.bias"]
    assert list(model.state_dict()) == list(twin.state_dict()) == keys
    model.load_state_dict(twin.state_dict())
    obs = np.eye(16, dtype=np.float32)[:3]
    logits, values = model(obs)
    assert logits.shape == (3, 4) and values.shape == (3,) and values.dtype == np.float32
    t_logits, t_values = twin(torch.from_numpy(obs))
    np.testing.assert_allclose(logits, t_logits.detach().numpy(), rtol=1e-6)


class ClipLeaksGradient(PPOLoss):
    """Forgets that the clipped branch is flat: passes dρ through where ρ is clipped."""

    def backward(self, grad_output):
        ratio, clipped, normalized, unclipped_is_min = self._pg_cache
        self._pg_cache = (ratio, clipped, normalized, np.ones_like(unclipped_is_min))
        return super().backward(grad_output)


def test_verify_accepts_a_copy_and_names_a_gradient_through_the_clip(tmp_path, capsys):
    concept = get("policy_gradient")
    quick = dataclasses.replace(concept, cases=[concept.case("ppo"), concept.case("bandit-ppo")])

    class MyPPOLoss(PPOLoss):
        pass

    assert verify(quick, MyPPOLoss).passed
    report = verify(quick, ClipLeaksGradient)
    failed = {d.name for d in report.failures}
    assert "grad.input.logits" in failed and "grad.input.old_log_probs" in failed
    assert not {"out.0", "out.1", "out.4", "out.5", "grad.input.values"} & failed
    assert any(name.startswith("update") for name in failed)        # training drifts apart
    path = tmp_path / "mine.py"
    path.write_text("import numpy as np\nfrom numpy_impl.alignment.policy_gradient import "
                    "PPOLoss\n\n\n" + inspect.getsource(ClipLeaksGradient))
    assert main(["verify", "policy_gradient:PPOLoss", f"{path}:ClipLeaksGradient"]) == 1
    assert "grad.input.logits" in capsys.readouterr().out
