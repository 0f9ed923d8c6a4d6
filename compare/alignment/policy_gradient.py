"""Compare policy gradients: REINFORCE with a learned baseline and PPO's clipped surrogate, as
one forward and backward of each loss, then as 30 updates on a bandit and on a grid world.

Gradient cases (the module runner): ``ReinforceLoss`` and ``PPOLoss`` on a batch of logits,
values, actions, old log-probabilities, advantages and returns: every loss term (``out.0``
total, ``out.1`` policy, ``out.2`` value, ``out.3`` entropy; PPO's ``out.4`` approximate KL and
``out.5`` clipped fraction), and the gradient of every floating-point input (through the
log-softmax, the ratio and the clip, the advantage normalization, the value loss and the
entropy); by hand vs autograd, vs central finite differences, and vs a witness built from
``torch.distributions.Categorical`` and ``F.mse_loss`` (torch has no policy-gradient loss; the
tests add PPO's clipped objective written out from the paper). Features: advantage
normalization on and off, the entropy bonus, clip ε, a batch with every ratio clipped.

Training cases (``options["updates"]``): environments written in NumPy (``Bandit``: 5 arms
with Gaussian rewards; ``GridWorld``: 4 x 4, +1 at the far corner, slippery moves). The
uniforms that sample the actions and the environment's noise are drawn once and given to both
twins, so the same policy takes the same actions: per update the actions, the return, the
advantages (GAE with γ and λ; λ = 1 for REINFORCE), each loss term, PPO's KL and clipped
fraction, and the parameters after it (``update{k}/...``) are compared. The tests assert that
the policy learns the best arm and reaches the goal.

Sampled actions are integers and must be equal. In float32 a draw flips if its uniform falls
between the twins' values of a CDF step: they differ by 6e-8 per draw on average at the start
(summed over the steps, measured on 100,000 random rows of 4 logits) and more as training
parts the twins (4.9e-7 relative on the policy's weights after 25 updates at seed 720), so a
grid case's 2,880 draws flip about once in 1,000 seeds (seed 720, grid-ppo, update 26): the
grid cases train in float64 only. A bandit case's 480 draws have odds of about 3e-5 per seed
(none of seeds 0-999 differ), and its float32 run compares every update.

Benchmark size: a PPO batch of 2048 transitions, 4 actions, 16 features (T, E) = (128, 16).

Run: ``python -m compare.alignment.policy_gradient [--updates N] [run options]``: the
comparison, then both twins trained side by side on the grid world with PPO (float32), printing
the return, KL and clipped fraction per update.
"""
from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Categorical

from compare.cli.script import comparison_then_demo
from compare.concept import Bench, Case, Concept, Outcome, Trial, randint, randn
from compare.runner import run_module, torch_module
from compare.tolerances import Tolerance
from numpy_impl.alignment import policy_gradient as numpy_twin
from numpy_impl.training import optimizers as numpy_optim
from torch_impl.alignment import policy_gradient as torch_twin


# --- the witness: the same losses from torch.distributions and F.mse_loss -------------------------
class _BuiltinLoss(nn.Module):
    def __init__(self, clip_eps: float | None, value_coef: float, entropy_coef: float,
                 normalize_advantages: bool) -> None:
        super().__init__()
        self.clip_eps, self.value_coef, self.entropy_coef = clip_eps, value_coef, entropy_coef
        self.normalize_advantages = normalize_advantages

    def forward(self, logits, values, actions, old_log_probs, advantages, returns):
        dist = Categorical(logits=logits)
        log_prob, entropy = dist.log_prob(actions), dist.entropy().mean()
        if self.normalize_advantages:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        value_loss = 0.5 * F.mse_loss(values, returns)
        if self.clip_eps is None:
            policy_loss = -(log_prob * advantages).mean()
            extra = ()
        else:
            ratio = torch.exp(log_prob - old_log_probs)
            bounded = torch.clamp(ratio, 1 - self.clip_eps, 1 + self.clip_eps)
            policy_loss = -torch.minimum(ratio * advantages, bounded * advantages).mean()
            with torch.no_grad():
                extra = ((ratio - 1 - (log_prob - old_log_probs)).mean(),
                         ((ratio - 1).abs() > self.clip_eps).to(ratio.dtype).mean())
        loss = policy_loss + self.value_coef * value_loss - self.entropy_coef * entropy
        return (loss, policy_loss, value_loss, entropy, *extra)


class BuiltinReinforceLoss(_BuiltinLoss):
    def __init__(self, value_coef: float = 0.5, entropy_coef: float = 0.0,
                 normalize_advantages: bool = False) -> None:
        super().__init__(None, value_coef, entropy_coef, normalize_advantages)


class BuiltinPPOLoss(_BuiltinLoss):
    def __init__(self, clip_eps: float = 0.2, value_coef: float = 0.5,
                 entropy_coef: float = 0.01, normalize_advantages: bool = True) -> None:
        super().__init__(clip_eps, value_coef, entropy_coef, normalize_advantages)


# --- environments, in NumPy, vectorized over E copies; their randomness comes in -----------------
class Bandit:
    """K arms; pulling arm a pays means[a] + scale * noise. Every step ends an episode; the
    observation is the constant 1."""

    obs_dim = 1

    def __init__(self, envs: int, means: Sequence[float] = (0.2, 0.5, 1.0, 0.3, 0.6),
                 scale: float = 0.5) -> None:
        self.envs, self.means, self.scale = envs, np.asarray(means), scale
        self.n_actions = len(means)

    def reset(self) -> np.ndarray:
        return np.ones((self.envs, 1))

    def step(self, actions: np.ndarray, noise: np.ndarray, slip: np.ndarray,
             slip_action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rewards = self.means[actions] + self.scale * noise             # (E,)
        return np.ones((self.envs, 1)), rewards, np.ones(self.envs)


class GridWorld:
    """size x size cells, start at the top-left, the goal at the bottom-right (+1, then a new
    episode from the start). Actions up, right, down, left; with probability ``slip`` the move
    is a random one instead; moves off the grid stay put. Observations are one-hot cells."""

    MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])

    def __init__(self, envs: int, size: int = 4, slip: float = 0.1) -> None:
        self.envs, self.size, self.slip = envs, size, slip
        self.obs_dim, self.n_actions = size * size, 4
        self.cell = np.zeros(envs, dtype=np.int64)

    def observe(self) -> np.ndarray:
        return np.eye(self.obs_dim)[self.cell]                         # (E, size²)

    def reset(self) -> np.ndarray:
        self.cell = np.zeros(self.envs, dtype=np.int64)
        return self.observe()

    def step(self, actions: np.ndarray, noise: np.ndarray, slip: np.ndarray,
             slip_action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        moves = np.where(slip < self.slip, slip_action, actions)      # (E,) slippery
        row, col = np.divmod(self.cell, self.size)
        row = np.clip(row + self.MOVES[moves, 0], 0, self.size - 1)
        col = np.clip(col + self.MOVES[moves, 1], 0, self.size - 1)
        self.cell = row * self.size + col
        done = self.cell == self.obs_dim - 1                          # reached the goal
        self.cell = np.where(done, 0, self.cell)                      # a new episode
        return self.observe(), done.astype(np.float64), done.astype(np.float64)


ENVIRONMENTS = {"bandit": Bandit, "grid": GridWorld}


@dataclass
class Noise:
    """Everything random in a training run, drawn once: (updates, T, E) each."""

    action_uniforms: np.ndarray
    reward_noise: np.ndarray
    slip: np.ndarray
    slip_action: np.ndarray


def draw_noise(updates: int, steps: int, envs: int, rng: np.random.Generator) -> Noise:
    shape = (updates, steps, envs)
    return Noise(rng.random(shape), rng.standard_normal(shape), rng.random(shape),
                 rng.integers(0, 4, size=shape))


def collect(act: Callable[[np.ndarray, np.ndarray], np.ndarray], env: Any, obs: np.ndarray,
            noise: Noise, k: int, cast: Callable[[np.ndarray], np.ndarray]):
    """One rollout of T steps of update k: (rollout dict, the observation after it)."""
    steps = noise.action_uniforms.shape[1]
    rollout = {key: [] for key in ("obs", "actions", "rewards", "dones")}
    for t in range(steps):                                             # a loop over time
        actions = act(cast(obs), noise.action_uniforms[k, t])
        rollout["obs"].append(cast(obs))
        rollout["actions"].append(actions)
        obs, rewards, dones = env.step(actions, noise.reward_noise[k, t], noise.slip[k, t],
                                       noise.slip_action[k, t])
        rollout["rewards"].append(cast(rewards))
        rollout["dones"].append(cast(dones))
    batch = {key: np.stack(v) for key, v in rollout.items()}          # (T, E, ...)
    batch["last_obs"] = cast(obs)
    return batch, obs


# --- training: each twin acts in its own copy of the environment ---------------------------------
def _initial_state(options: dict, trial: Trial, env: Any) -> dict[str, np.ndarray]:
    torch.manual_seed(trial.seed)
    model = torch_twin.ActorCritic(env.obs_dim, env.n_actions).double()
    return {k: trial.cast(v.numpy().copy()) for k, v in model.state_dict().items()}


def _record(values: dict, k: int, batch: dict, stats: dict, params: Any) -> None:
    values[f"update{k}/actions"] = batch["actions"]
    values[f"update{k}/return"] = np.asarray(batch["rewards"].sum(0).mean(),
                                             dtype=batch["rewards"].dtype)
    for name, value in stats.items():
        values[f"update{k}/{name}"] = np.asarray(value)
    for name, param in params:
        values[f"update{k}/param.{name}"] = param


def train_numpy(loss_fn: Any, options: dict, noise: Noise, state: dict, trial: Trial
                ) -> dict[str, np.ndarray]:
    env = ENVIRONMENTS[options["env"]](options["envs"])
    model = numpy_twin.ActorCritic(env.obs_dim, env.n_actions).to(trial.np_dtype)
    model.load_state_dict(state)
    opt = getattr(numpy_optim, options["optimizer"])(model.parameters(), lr=options["lr"],
                                                           eps=options["eps"])
    act = lambda obs, u: numpy_twin.sample_actions(model(obs)[0], u)  # noqa: E731
    obs, values = env.reset(), {}
    for k in range(options["updates"]):
        batch, obs = collect(act, env, obs, noise, k, trial.cast)
        stats = numpy_twin.update(model, loss_fn, opt, batch, options["gamma"], options["lam"],
                                  options["epochs"])
        _record(values, k + 1, batch, stats,
                ((n, p.data.copy()) for n, p in model.named_parameters()))
    return values


def train_torch(loss_fn: nn.Module, options: dict, noise: Noise, state: dict, trial: Trial
                ) -> dict[str, np.ndarray]:
    env = ENVIRONMENTS[options["env"]](options["envs"])
    model = torch_twin.ActorCritic(env.obs_dim, env.n_actions).to(trial.torch_dtype)
    model.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in state.items()})
    model.to(trial.device)
    opt = getattr(torch.optim, options["optimizer"])(model.parameters(), lr=options["lr"],
                                                           eps=options["eps"])

    def tensor(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(array)).to(trial.device)

    def act(obs: np.ndarray, u: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits, _ = model(tensor(obs))
        return torch_twin.sample_actions(logits, tensor(u)).cpu().numpy()

    obs, values = env.reset(), {}
    for k in range(options["updates"]):
        batch, obs = collect(act, env, obs, noise, k, trial.cast)
        stats = torch_twin.update(model, loss_fn, opt, {key: tensor(v) for key, v in batch.items()},
                                  options["gamma"], options["lam"], options["epochs"])
        _record(values, k + 1, batch, {n: v.cpu().numpy() for n, v in stats.items()},
                ((n, p.detach().cpu().numpy().copy()) for n, p in model.named_parameters()))
    return values


def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
    """Gradient cases: the module runner. Training cases: ``updates`` rollouts and updates in
    each twin, with ``numpy_cls`` / ``torch_cls`` as the loss."""
    options = case.options
    if "updates" not in options:
        return run_module(case, trial, numpy_cls, torch_cls)
    env = ENVIRONMENTS[options["env"]](options["envs"])
    state = _initial_state(options, trial, env)
    noise = draw_noise(options["updates"], options["steps"], options["envs"], trial.rng())
    noise.action_uniforms = trial.cast(noise.action_uniforms)
    numpy_loss = (numpy_cls or case.numpy)(**case.init)
    outcome = Outcome(numpy=train_numpy(numpy_loss, options, noise, state, trial),
                      torch=train_torch(torch_module(torch_cls or case.torch, case, {}, trial),
                                        options, noise, state, trial))
    if trial.builtin and case.builtin is not None:
        outcome.builtin = train_torch(torch_module(case.builtin, case, {}, trial), options,
                                      noise, state, trial)
    return outcome


# --- cases ---------------------------------------------------------------------------------------
def _inputs(n: int, actions: int, old_shift: float = 0.0) -> dict[str, Any]:
    # old log-probabilities near log(1/A): ratios spread around 1, some inside the clip range,
    # some outside; a ratio within ~1e-6 of 1 ± ε (odds ~1e-6 per element) would put the
    # clip's kink inside the finite-difference step
    return dict(logits=randn(n, actions), values=randn(n), actions=randint(actions, n),
                old_log_probs=randn(n, scale=0.3, shift=-np.log(actions) - 0.3 + old_shift),
                advantages=randn(n, shift=0.2), returns=randn(n))


def _loss_case(name: str, ppo: bool, n: int = 12, actions: int = 4, old_shift: float = 0.0,
               **init: Any) -> Case:
    numpy_cls, torch_cls, builtin = (
        (numpy_twin.PPOLoss, torch_twin.PPOLoss, BuiltinPPOLoss) if ppo else
        (numpy_twin.ReinforceLoss, torch_twin.ReinforceLoss, BuiltinReinforceLoss))
    return Case(name, numpy=numpy_cls, torch=torch_cls, builtin=builtin, init=init,
                prepare=None, inputs=_inputs(n, actions, old_shift))


# Adam's eps for REINFORCE (its default 1e-8): a gradient element near 0 (a grid cell the
# first rollout barely visits) steps by lr g / (|g| + eps), whose sensitivity to g is up to
# 1 / eps; the float32 twins' rounding of such a g parted their first grid update by 6.5e-5
# on a weight of 0.09 at seed 684 (1.9x its bound). The grid now trains in float64 only (its
# actions flip by rounding too, below); eps 1e-3 still bounds that sensitivity in the
# bandit's float32 run (largest use of a float32 bound 0.74 over seeds 0-741 with 1e-8, 0.18
# over seeds 600-799 with 1e-3), as in dpo's training. PPO keeps the default: with eps 1e-3 or
# 1e-5 its grid policy no longer reaches the goal in 30 updates.
REINFORCE_EPS = 1e-3


def _training(name: str, env: str, ppo: bool, **options: Any) -> Case:
    numpy_cls, torch_cls, builtin = (
        (numpy_twin.PPOLoss, torch_twin.PPOLoss, BuiltinPPOLoss) if ppo else
        (numpy_twin.ReinforceLoss, torch_twin.ReinforceLoss, BuiltinReinforceLoss))
    sizes = dict(bandit=dict(steps=1, envs=16, gamma=0.0),
                 grid=dict(steps=12, envs=8, gamma=0.9))[env]
    settings = dict(env=env, updates=30, optimizer="Adam", lr=0.1,
                    eps=1e-8 if ppo else REINFORCE_EPS,
                    lam=0.95 if ppo else 1.0, epochs=4 if ppo else 1) | sizes | options
    # fd=False: a training run has no single backward to difference (the gradient cases do);
    # the grid in float64 only: its float32 actions flip by rounding (docstring)
    return Case(name, numpy=numpy_cls, torch=torch_cls, builtin=builtin, prepare=None, fd=False,
                init=dict(entropy_coef=0.01), options=settings,
                dtypes=("float64",) if env == "grid" else ("float64", "float32"))


# actions are integers below 1e12: any difference (>= 1) exceeds 1e-12 max|b|, so the same
# actions, one for one
_SAME_ACTIONS = {f"{dtype}:update{k}/actions": Tolerance(rtol=1e-12)
                 for dtype in ("float64", "float32") for k in range(1, 31)}
# Cancellation, not disagreement (an absolute bound where the value is ~0 by construction):
# - policy_loss: a mean of terms ρÂ of size ~1 whose advantages are normalized to mean zero;
#   once every bandit environment pulls the same arm, all ρ are equal and the mean is exactly
#   0 in exact arithmetic, so its rounding error is ~eps max|ρÂ| (|ρÂ| up to ~4) in absolute
#   terms; the same holds for the total loss it is part of. Measured over seeds 0..20, worst
#   |numpy - torch|: float64 8.9e-16 (bound 1e-14), float32 4.8e-7 (bound 2e-6).
# - approx_kl = mean((ρ - 1) - log ρ) ~ (log ρ)²/2 subtracts two numbers ~1e-3 to get ~1e-6:
#   the rounding of ρ (float32: ~6e-8) is an absolute error of that size. Measured worst:
#   float64 2.7e-16 (bound 1e-14), float32 1.4e-7 (bound 1e-6).
_CANCELLATION = {f"{dtype}:update{k}/{name}": bound
                 for k in range(1, 31)
                 for dtype, name, bound in (
                     ("float64", "policy_loss", Tolerance(rtol=1e-10, atol=1e-14)),
                     ("float64", "loss", Tolerance(rtol=1e-10, atol=1e-14)),
                     ("float32", "loss", Tolerance(rtol=1e-4, atol=2e-6)),
                     ("float64", "approx_kl", Tolerance(rtol=1e-10, atol=1e-14)),
                     ("float32", "policy_loss", Tolerance(rtol=1e-4, atol=2e-6)),
                     ("float32", "approx_kl", Tolerance(rtol=1e-4, atol=1e-6)))}
# The same cancellation in the loss cases: out.0 and out.1 (the loss and the policy loss
# L_pg = -mean(log π Â)) average terms of size ~1 against normalized advantages; at seed 125
# L_pg was 5.5e-4 and its float32 rounding (6.7e-8 between the twins, 7.9e-8 to the
# built-in) 1.4e-4 of it. Measured worst |difference| over seeds 0..299 and every loss case:
# 4.8e-7 (numpy-vs-torch), 2.4e-7 (torch-vs-builtin). The float32 bound of the training
# losses above, 2e-6, for both outputs.
_LOSS_CASES = {f"float32:out.{k}": Tolerance(rtol=1e-4, atol=2e-6) for k in (0, 1)}
# The bandit feeds one constant observation, so its value head's weight (1, 1) and bias (1,)
# act only through their sum, the baseline: each alone drifts to a near-zero number (~3e-4)
# that carries the absolute rounding of 30 float32 Adam steps of lr 0.1. Measured worst
# |numpy - torch| over seeds 0..49: 1.6e-7 (seed 39; 1.2e-4 of the value itself, over the
# relative bound at seeds 37, 39, 40). An absolute floor 6x that, in float32 only.
_VALUE_HEAD = {f"float32:update{k}/param.value.{name}": Tolerance(rtol=1e-4, atol=1e-6)
               for k in range(1, 31) for name in ("weight", "bias")}
# The loss cases' input gradients are means over the batch (~1/N, 4e-4 to 5e-4 at seeds 581
# and 953), while central differences carry their own rounding, eps |L| / h, whatever the
# gradient's size: at most 1.0e-8 on any input over seeds 0-999 and every loss case, which
# reached 1e-6 of those small gradients (6.0e-10 on values and returns at seed 581, 2.4e-10
# on advantages at 953). An fd floor 5x that measurement; a wrong backward is off by the
# gradient's own size.
_FD_ROUNDING = {"fd": Tolerance(rtol=1e-6, atol=5e-8)}


def _bench_work(trial: Trial) -> dict[str, Any]:
    """One PPO update (GAE over the rollout, then one full-batch Adam step of the clipped
    loss) of the actor-critic (16 features, 4 actions) on a rollout of T = 128 steps of E = 16
    environments, 2048 transitions, drawn once; the models train on from the same weights."""
    steps, envs, dim, actions = 128, 16, 16, 4
    rng = trial.rng()
    rollout = dict(obs=trial.cast(rng.standard_normal((steps, envs, dim))),
                   actions=rng.integers(0, actions, (steps, envs)),
                   rewards=trial.cast(rng.standard_normal((steps, envs))),
                   dones=trial.cast((rng.random((steps, envs)) < 0.05).astype(np.float64)),
                   last_obs=trial.cast(rng.standard_normal((envs, dim))))
    torch.manual_seed(trial.seed)
    state = {k: trial.cast(v.numpy().copy())
             for k, v in torch_twin.ActorCritic(dim, actions).double().state_dict().items()}
    model = numpy_twin.ActorCritic(dim, actions).to(trial.np_dtype)
    model.load_state_dict(state)
    numpy_loss, numpy_opt = numpy_twin.PPOLoss(), numpy_optim.Adam(model.parameters(), lr=1e-3)

    def torch_step(loss_cls: Any) -> Any:
        net = torch_twin.ActorCritic(dim, actions).to(trial.torch_dtype)
        net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
        loss_fn, opt = loss_cls().to(trial.torch_dtype), torch.optim.Adam(net.parameters(),
                                                                          lr=1e-3)
        batch = {k: torch.from_numpy(np.array(v)) for k, v in rollout.items()}
        return lambda: torch_twin.update(net, loss_fn, opt, batch, 0.99, 0.95, 1)
    return {"numpy": lambda: numpy_twin.update(model, numpy_loss, numpy_opt, rollout, 0.99,
                                               0.95, 1),
            "torch": torch_step(torch_twin.PPOLoss), "builtin": torch_step(BuiltinPPOLoss)}


CONCEPT = Concept(
    name="policy_gradient",
    family="alignment",
    summary="policy gradients: REINFORCE with a learned baseline, PPO clipped surrogate "
            "(ratio, clip ε, advantage normalization, GAE, value loss, entropy bonus)",
    compares="every loss term, PPO's KL and clipped fraction; grads of logits, values, old "
             "log-probs, advantages (through normalization) and returns; 30 updates on a "
             "5-armed bandit and a 4x4 grid world with shared randomness: actions, return, GAE "
             "advantages, losses and parameters per update; the best arm / the goal is learned",
    witness="none in torch; torch.distributions.Categorical, F.mse_loss; torch.optim",
    run=run,
    bench=Bench("one PPO update (GAE, one Adam step of the clipped loss) of the actor-critic on "
                "2048 transitions, (T, E) = (128, 16), 16 features, 4 actions", work=_bench_work),
    tolerance=_SAME_ACTIONS | _CANCELLATION | _LOSS_CASES | _VALUE_HEAD | _FD_ROUNDING,
    cases=[
        _loss_case("reinforce", ppo=False),
        _loss_case("reinforce-normalized-entropy", ppo=False, normalize_advantages=True,
                   entropy_coef=0.05),
        _loss_case("ppo", ppo=True),
        _loss_case("ppo-raw-advantages", ppo=True, normalize_advantages=False, clip_eps=0.1),
        _loss_case("ppo-all-clipped", ppo=True, old_shift=-2.0, entropy_coef=0.0),
        _loss_case("ppo-two-actions", ppo=True, n=5, actions=2, value_coef=1.0),
        _training("bandit-reinforce", "bandit", ppo=False),
        _training("bandit-ppo", "bandit", ppo=True),
        _training("grid-reinforce", "grid", ppo=False),
        _training("grid-ppo", "grid", ppo=True),
    ],
)


PLOT_UPDATES = 40


# --- the demo ------------------------------------------------------------------------------------
def train_side_by_side(updates: int = 60, env: str = "grid", ppo: bool = True, seed: int = 0,
                       out: TextIO | None = sys.stdout) -> dict[str, np.ndarray]:
    """Both twins in float32 from the same weights with the same randomness; per update the
    return, and for PPO the KL and clipped fraction, side by side."""
    case = _training("demo", env, ppo, updates=updates)
    outcome = run(case, Trial("float32", seed=seed, builtin=False, fd=False))
    curves: dict[str, Any] = {"update": np.arange(1, updates + 1)}
    keys = ("return", "approx_kl", "clip_fraction") if ppo else ("return",)
    for twin in ("numpy", "torch"):
        values = getattr(outcome, twin)
        for key in keys:
            curves[f"{key}_{twin}"] = np.array([values[f"update{k}/{key}"]
                                                for k in range(1, updates + 1)])
    if out is not None:
        algorithm = "PPO" if ppo else "REINFORCE"
        print(f"training both twins (float32, {algorithm} on the {env}, {case.options['envs']} "
              f"environments x {case.options['steps']} steps per update, Adam)", file=out)
        print(f"{'update':>6}  {'return numpy':>12}  {'return torch':>12}"
              + (f"  {'KL numpy':>10}  {'KL torch':>10}  {'clipped numpy':>13}  "
                 f"{'clipped torch':>13}" if ppo else ""), file=out)
        for k in range(updates):
            line = (f"{k + 1:>6}  {curves['return_numpy'][k]:12.4f}  "
                    f"{curves['return_torch'][k]:12.4f}")
            if ppo:
                line += (f"  {curves['approx_kl_numpy'][k]:10.6f}  "
                         f"{curves['approx_kl_torch'][k]:10.6f}  "
                         f"{curves['clip_fraction_numpy'][k]:13.4f}  "
                         f"{curves['clip_fraction_torch'][k]:13.4f}")
            print(line, file=out)
    return curves


def extra_plots(directory: Path, seed: int) -> list[Path]:
    """policy_gradient_return_<env>.png (REINFORCE and PPO), policy_gradient_kl.png,
    policy_gradient_clip_fraction.png: both twins' curves per update, and their difference."""
    from compare.plots import plot_curves
    paths = []
    for env in ("bandit", "grid"):
        for ppo in (False, True):
            curves = train_side_by_side(updates=PLOT_UPDATES, env=env, ppo=ppo, seed=seed,
                                        out=None)
            algorithm = "ppo" if ppo else "reinforce"
            paths.append(plot_curves(
                Path(directory) / f"policy_gradient_return_{env}_{algorithm}.png",
                f"{algorithm.upper()} on the {env}: mean return per environment per rollout",
                curves["update"], curves["return_numpy"], curves["return_torch"],
                xlabel="update", ylabel="return", dtype="float32"))
            if ppo and env == "grid":
                for key, what in (("approx_kl", "approximate KL(old || new)"),
                                  ("clip_fraction", "fraction of clipped ratios")):
                    paths.append(plot_curves(
                        Path(directory) / f"policy_gradient_{key}.png",
                        f"PPO on the grid: {what}, last epoch of each update", curves["update"],
                        curves[f"{key}_numpy"], curves[f"{key}_torch"], xlabel="update",
                        ylabel=key.replace("_", " "), dtype="float32"))
    return paths


CONCEPT.extra_plots = extra_plots


def script(argv: Sequence[str] | None = None) -> int:
    """``python -m compare.alignment.policy_gradient [--updates N] [run options]``: the
    comparison, then the training demo (60 updates by default). Returns the comparison's exit
    code."""
    return comparison_then_demo(CONCEPT.name, train_side_by_side, "updates", 60,
                                argv)


if __name__ == "__main__":
    raise SystemExit(script())
