r"""Policy gradients: REINFORCE with a learned baseline, and PPO's clipped surrogate.

An actor-critic network maps an observation s (D,) to action logits z(s) (A,) and a value
V(s); the policy is π(a|s) = softmax(z(s))_a. A rollout of T steps in E parallel environments
gives observations, actions a_t, rewards r_t and episode ends d_t (1 where the step ended an
episode; the environment then restarts).

Generalized advantage estimation (GAE, γ discount, λ trace), from the rollout's values V_t
and the value of the observation after the last step, V_T:

    δ_t = r_t + γ (1 - d_t) V_{t+1} - V_t                  one-step TD error
    A_t = δ_t + γ λ (1 - d_t) A_{t+1}                      backwards from A_T = 0
    G_t = A_t + V_t                                        the value target (λ-return)

With λ = 1, A_t = (discounted return, bootstrapped from V_T) - V_t: REINFORCE's return minus
its baseline. Advantages are data for the losses (no gradient flows back into V through them).

Advantage normalization (optional), with the unbiased standard deviation σ over the batch:

    Â = (A - μ) / (σ + 1e-8)

Per sample n of a batch of N, with lp_n = log π(a_n | s_n) = log_softmax(z_n)[a_n]:

    REINFORCE    L_pg = -(1/N) Σ lp_n Â_n
    PPO          ρ_n  = exp(lp_n - lp_old,n)                        probability ratio
                 L_pg = -(1/N) Σ min(ρ_n Â_n, clip(ρ_n, 1-ε, 1+ε) Â_n)
    value loss   L_v  = (1/2N) Σ (V_n - G_n)²
    entropy      H    = (1/N) Σ_n -Σ_a π_a log π_a
    total        L    = L_pg + c_v L_v - c_e H
    PPO reports  KL ≈ (1/N) Σ (ρ - 1) - log ρ  and the clipped fraction (1/N) Σ 1[|ρ - 1| > ε]

Backward, given upstream gradients g_L, g_pg, g_v, g_H of the four losses (1, 0, 0, 0 in
training): the total passes into each term, ḡ_pg = g_L + g_pg, ḡ_v = c_v g_L + g_v,
ḡ_H = g_H - c_e g_L; then, one chain-rule step per line:

    REINFORCE    dlp = -ḡ_pg Â / N,        dÂ = -ḡ_pg lp / N
    PPO          dm  = -ḡ_pg / N on the smaller branch m of min(ρÂ, clip(ρ)Â)
                 dρ  = dm Â (unclipped) or dm Â 1[1-ε <= ρ <= 1+ε] (clipped)
                 dÂ  = dm ρ (unclipped) or dm clip(ρ) (clipped)
                 dlp = dρ ρ,   dlp_old = -dρ ρ                      ρ = exp(lp - lp_old)
    value        dV = ḡ_v (V - G) / N,     dG = -dV
    entropy      dz += ḡ_H / N (-π (log π + H_n))                   dH_n/dz = -π (log π + H_n)
    log-prob     dz += (onehot(a) - π) dlp                          log-softmax, gathered at a
    normalize    dA = (dÂ - mean dÂ) / (σ+ε) - (A - μ) Σ_j dÂ_j (A_j - μ) / ((N-1) σ (σ+ε)²)

(On a tie of min's two branches -- ρ inside the clip range -- both branches have the same
derivatives, so it does not matter which takes the gradient.)

Sampling: a_t is drawn by the inverse CDF from given uniforms, so twins given the same
uniforms take the same actions.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy_impl.layers.activations import log_softmax
from numpy_impl.layers.linear import Linear
from numpy_impl.module import Module

NORMALIZE_EPS = 1e-8


# --- the network ---------------------------------------------------------------------------------
class ActorCritic(Module):
    """Two linear heads on the observation: action logits (N, A) and a value (N,)."""

    def __init__(self, obs_dim: int = 16, n_actions: int = 4) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.policy = Linear(obs_dim, n_actions)                       # z = s W_π^T + b_π
        self.value = Linear(obs_dim, 1)                                # V = s w_V^T + b_V

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.policy(obs), self.value(obs)[:, 0]                 # (N, A), (N,)

    def backward(self, grad_output: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        d_logits, d_values = grad_output
        d_obs = self.policy.backward(d_logits)                         # (N, D)
        if d_values is not None:
            d_obs = d_obs + self.value.backward(d_values[:, None])     # both heads read s
        return d_obs

    def extra_repr(self) -> str:
        return f"obs_dim={self.obs_dim}, n_actions={self.n_actions}"


def sample_actions(logits: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
    """Inverse CDF: the smallest a with π_0 + .. + π_a > u, per row (N,)."""
    probs = np.exp(log_softmax(logits, -1))                            # (N, A)
    cdf = np.cumsum(probs, axis=-1)                                    # (N, A)
    # rounding can leave cdf_{A-1} a hair below 1: a u above it takes the last action
    return np.minimum((cdf <= uniforms[:, None]).sum(-1), logits.shape[-1] - 1)


# --- advantages ----------------------------------------------------------------------------------
def gae(rewards: np.ndarray, values: np.ndarray, dones: np.ndarray, last_value: np.ndarray,
        gamma: float = 0.99, lam: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """(advantages, returns), each (T, E), from rewards, values, dones (T, E), V_T (E,)."""
    advantages = np.zeros_like(values)                                 # (T, E)
    next_value, next_advantage = last_value, np.zeros_like(last_value)  # (E,)
    for t in reversed(range(rewards.shape[0])):                        # a loop over time
        alive = 1.0 - dones[t]                                         # (E,) no bootstrap at ends
        delta = rewards[t] + gamma * alive * next_value - values[t]    # δ_t
        next_advantage = delta + gamma * lam * alive * next_advantage  # A_t
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values                             # A, G = A + V


def normalize_forward(advantages: np.ndarray, enabled: bool = True):
    """Â = (A - μ) / (σ + 1e-8) with the unbiased σ (or A itself); returns (Â, cache)."""
    if not enabled:
        return advantages, None
    centered = advantages - advantages.mean()                         # (N,)
    std = np.sqrt(np.sum(centered ** 2) / (advantages.size - 1))       # unbiased, as torch.std
    return centered / (std + NORMALIZE_EPS), (centered, std)


def normalize_backward(d_normalized: np.ndarray, cache) -> np.ndarray:
    if cache is None:
        return d_normalized
    centered, std = cache
    n, scale = centered.size, std + NORMALIZE_EPS
    d_centered = d_normalized / scale                                  # through 1/(σ+ε) directly
    d_std = -np.sum(d_normalized * centered) / scale ** 2              # through σ
    d_centered = d_centered + d_std * centered / ((n - 1) * std)       # dσ/dc = c / ((N-1) σ)
    return d_centered - d_centered.mean()                              # c = A - mean(A)


# --- the pieces both losses share ----------------------------------------------------------------
def _log_probs_and_entropy(logits: np.ndarray, actions: np.ndarray):
    logp = log_softmax(logits, -1)                                     # (N, A)
    probs = np.exp(logp)                                               # (N, A)
    taken = np.take_along_axis(logp, actions[:, None], -1)[:, 0]       # (N,) lp
    entropy = -(probs * logp).sum(-1)                                  # (N,) H_n
    return taken, entropy, (logp, probs, entropy, actions)


def _logits_backward(d_taken: np.ndarray, d_entropy: np.ndarray, cache) -> np.ndarray:
    """dL/dz from dL/dlp (N,) and dL/dH_n (N,)."""
    logp, probs, entropy, actions = cache
    onehot = np.eye(logp.shape[-1], dtype=logp.dtype)[actions]         # (N, A)
    d_logits = (onehot - probs) * d_taken[:, None]                     # log-softmax, at a
    d_logits -= probs * (logp + entropy[:, None]) * d_entropy[:, None]  # entropy
    return d_logits                                                    # (N, A)


def _upstream(grad_output: Any, n: int) -> list[Any]:
    """The first ``n`` upstream gradients (None where an output got none) as 0-d arrays."""
    grads = list(grad_output) if isinstance(grad_output, tuple) else [grad_output]
    grads += [None] * (n - len(grads))
    return [np.zeros(()) if g is None else np.asarray(g) for g in grads[:n]]


class _PolicyGradientLoss(Module):
    """Shared constructor and value/entropy terms; subclasses define the policy term."""

    def __init__(self, value_coef: float = 0.5, entropy_coef: float = 0.01,
                 normalize_advantages: bool = True) -> None:
        super().__init__()
        self.value_coef = value_coef
        self.entropy_coef = entropy_coef
        self.normalize_advantages = normalize_advantages

    def _common(self, logits, values, actions, advantages, returns):
        actions = np.asarray(actions)
        taken, entropy, self._logit_cache = _log_probs_and_entropy(logits, actions)
        normalized, self._norm_cache = normalize_forward(advantages, self.normalize_advantages)
        value_loss = 0.5 * np.mean((values - returns) ** 2)            # L_v
        self._value_cache = (values - returns, values.size)
        return taken, entropy, normalized, value_loss

    def _common_backward(self, g_loss, g_pg, g_v, g_h):
        """The total's share of each term: ḡ_pg, ḡ_v, ḡ_H."""
        return g_loss + g_pg, self.value_coef * g_loss + g_v, g_h - self.entropy_coef * g_loss

    def _value_backward(self, g_v):
        error, n = self._value_cache
        d_values = g_v * error / n                                     # (N,)  L_v = Σ e²/2N
        return d_values, -d_values                                     # dV, dG

    def extra_repr(self) -> str:
        return (f"value_coef={self.value_coef}, entropy_coef={self.entropy_coef}, "
                f"normalize_advantages={self.normalize_advantages}")


class ReinforceLoss(_PolicyGradientLoss):
    """REINFORCE with a learned baseline: L = -mean(lp Â) + c_v L_v - c_e H.

    ``forward(logits, values, actions, old_log_probs, advantages, returns)`` -> (loss,
    policy_loss, value_loss, entropy). ``old_log_probs`` is not used (on-policy: one step per
    rollout); it is there so that both losses take the same rollout.
    """

    def __init__(self, value_coef: float = 0.5, entropy_coef: float = 0.0,
                 normalize_advantages: bool = False) -> None:
        super().__init__(value_coef, entropy_coef, normalize_advantages)

    def forward(self, logits: np.ndarray, values: np.ndarray, actions: np.ndarray,
                old_log_probs: np.ndarray, advantages: np.ndarray,
                returns: np.ndarray) -> tuple[np.ndarray, ...]:
        taken, entropy, normalized, value_loss = self._common(logits, values, actions,
                                                              advantages, returns)
        policy_loss = -np.mean(taken * normalized)                     # L_pg
        self._pg_cache = (taken, normalized, np.shape(old_log_probs))
        mean_entropy = entropy.mean()                                  # H
        loss = policy_loss + self.value_coef * value_loss - self.entropy_coef * mean_entropy
        return loss, policy_loss, value_loss, mean_entropy

    def backward(self, grad_output: Any) -> tuple[np.ndarray, ...]:
        g_pg, g_v, g_h = self._common_backward(*_upstream(grad_output, 4))
        taken, normalized, old_shape = self._pg_cache
        n = taken.size
        d_taken = -g_pg * normalized / n                               # L_pg = -Σ lp Â / N
        d_normalized = -g_pg * taken / n
        d_logits = _logits_backward(d_taken, np.broadcast_to(g_h / n, (n,)), self._logit_cache)
        d_values, d_returns = self._value_backward(g_v)
        d_advantages = normalize_backward(d_normalized, self._norm_cache)
        d_old = np.zeros(old_shape, dtype=d_logits.dtype)              # unused input
        return d_logits, d_values, d_old, d_advantages, d_returns


class PPOLoss(_PolicyGradientLoss):
    """PPO's clipped surrogate: L = -mean(min(ρÂ, clip(ρ, 1±ε)Â)) + c_v L_v - c_e H.

    ``forward(logits, values, actions, old_log_probs, advantages, returns)`` -> (loss,
    policy_loss, value_loss, entropy, approx_kl, clip_fraction); the last two are diagnostics
    (no gradient).
    """

    def __init__(self, clip_eps: float = 0.2, value_coef: float = 0.5,
                 entropy_coef: float = 0.01, normalize_advantages: bool = True) -> None:
        super().__init__(value_coef, entropy_coef, normalize_advantages)
        self.clip_eps = clip_eps

    def forward(self, logits: np.ndarray, values: np.ndarray, actions: np.ndarray,
                old_log_probs: np.ndarray, advantages: np.ndarray,
                returns: np.ndarray) -> tuple[np.ndarray, ...]:
        taken, entropy, normalized, value_loss = self._common(logits, values, actions,
                                                              advantages, returns)
        log_ratio = taken - old_log_probs                              # (N,)
        ratio = np.exp(log_ratio)                                      # ρ
        clipped = np.clip(ratio, 1.0 - self.clip_eps, 1.0 + self.clip_eps)
        surrogate = ratio * normalized                                 # ρ Â
        surrogate_clipped = clipped * normalized                       # clip(ρ) Â
        unclipped_is_min = surrogate <= surrogate_clipped              # which branch min takes
        policy_loss = -np.mean(np.where(unclipped_is_min, surrogate, surrogate_clipped))
        self._pg_cache = (ratio, clipped, normalized, unclipped_is_min)
        mean_entropy = entropy.mean()
        loss = policy_loss + self.value_coef * value_loss - self.entropy_coef * mean_entropy
        approx_kl = np.mean((ratio - 1.0) - log_ratio)                 # k3 estimator
        clip_fraction = np.mean(np.abs(ratio - 1.0) > self.clip_eps).astype(ratio.dtype)
        return loss, policy_loss, value_loss, mean_entropy, approx_kl, clip_fraction

    def backward(self, grad_output: Any) -> tuple[np.ndarray, ...]:
        g_pg, g_v, g_h = self._common_backward(*_upstream(grad_output, 4))
        ratio, clipped, normalized, unclipped_is_min = self._pg_cache
        n = ratio.size
        d_min = -g_pg / n                                              # (scalar) L_pg = -Σ m / N
        inside = np.abs(ratio - 1.0) <= self.clip_eps                  # clip passes the gradient
        d_ratio = np.where(unclipped_is_min, d_min * normalized,
                           d_min * normalized * inside)                # (N,)
        d_normalized = np.where(unclipped_is_min, d_min * ratio, d_min * clipped)
        d_taken = d_ratio * ratio                                      # ρ = exp(lp - lp_old)
        d_logits = _logits_backward(d_taken, np.broadcast_to(g_h / n, (n,)), self._logit_cache)
        d_values, d_returns = self._value_backward(g_v)
        d_advantages = normalize_backward(d_normalized, self._norm_cache)
        return d_logits, d_values, -d_taken, d_advantages, d_returns

    def extra_repr(self) -> str:
        return f"clip_eps={self.clip_eps}, " + super().extra_repr()


# --- one update from a rollout -------------------------------------------------------------------
def update(model: ActorCritic, loss_fn: Any, optimizer: Any, rollout: dict[str, np.ndarray],
           gamma: float, lam: float, epochs: int = 1) -> dict[str, np.ndarray]:
    """GAE from the rollout's values, then ``epochs`` full-batch steps of ``loss_fn``.

    ``rollout``: obs (T, E, D), actions, rewards, dones (T, E), last_obs (E, D). Returns the
    advantages (T, E) and each loss output of the last epoch."""
    obs = rollout["obs"]
    steps, envs, dim = obs.shape
    flat_obs = obs.reshape(steps * envs, dim)                          # (T E, D)
    actions = rollout["actions"].reshape(-1)                           # (T E,)
    logits, values = model(flat_obs)                                   # before any update
    _, last_value = model(rollout["last_obs"])                         # V_T (E,)
    advantages, returns = gae(rollout["rewards"], values.reshape(steps, envs), rollout["dones"],
                              last_value, gamma, lam)                  # (T, E) each
    old_log_probs = np.take_along_axis(log_softmax(logits, -1), actions[:, None], -1)[:, 0]
    for _ in range(epochs):
        logits, values = model(flat_obs)
        outputs = loss_fn(logits, values, actions, old_log_probs, advantages.reshape(-1),
                          returns.reshape(-1))
        optimizer.zero_grad()
        # dL/dL = 1 for the total, 0 for the three terms, none for the diagnostics
        one, zero = np.ones((), dtype=logits.dtype), np.zeros((), dtype=logits.dtype)
        upstream = (one, zero, zero, zero) + (None,) * (len(outputs) - 4)
        d_logits, d_values = loss_fn.backward(upstream)[:2]
        model.backward((d_logits, d_values))
        optimizer.step()
    names = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
    stats = {k: np.asarray(v) for k, v in zip(names[:len(outputs)], outputs, strict=True)}
    return {"advantages": advantages} | stats
