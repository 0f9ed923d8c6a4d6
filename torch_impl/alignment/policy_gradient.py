r"""Policy gradients in PyTorch: REINFORCE with a learned baseline and PPO's clipped
surrogate, written from the formulas; autograd does the backward, ``torch.optim`` the update.

    δ_t = r_t + γ (1 - d_t) V_{t+1} - V_t,   A_t = δ_t + γ λ (1 - d_t) A_{t+1},   G = A + V
    Â   = (A - mean A) / (std A + 1e-8)                      (unbiased std; optional)
    lp  = log_softmax(z)[a],   ρ = exp(lp - lp_old)
    REINFORCE  L_pg = -mean(lp Â)
    PPO        L_pg = -mean(min(ρ Â, clamp(ρ, 1-ε, 1+ε) Â))
    L = L_pg + c_v mean((V - G)²)/2 - c_e mean(H)
    PPO also reports KL ≈ mean((ρ - 1) - log ρ) and the clipped fraction (no gradient).

Same names, in the same order, as the NumPy twin.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torch_impl.layers.activations import log_softmax
from torch_impl.layers.linear import Linear

NORMALIZE_EPS = 1e-8


class ActorCritic(nn.Module):
    """Linear heads: action logits (N, A) and a value (N,)."""

    def __init__(self, obs_dim: int = 16, n_actions: int = 4) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.n_actions = n_actions
        self.policy = Linear(obs_dim, n_actions)
        self.value = Linear(obs_dim, 1)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy(obs), self.value(obs)[:, 0]

    def extra_repr(self) -> str:
        return f"obs_dim={self.obs_dim}, n_actions={self.n_actions}"


@torch.no_grad()
def sample_actions(logits: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse CDF: ``searchsorted(cdf, u, right=True)`` is the smallest a with cdf_a > u."""
    cdf = torch.cumsum(torch.exp(log_softmax(logits, -1)), dim=-1)     # (N, A)
    u = uniforms.to(cdf.dtype)[:, None].contiguous()                   # (N, 1)
    return torch.searchsorted(cdf, u, right=True)[:, 0].clamp(max=logits.shape[-1] - 1)


@torch.no_grad()
def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor,
        last_value: torch.Tensor, gamma: float = 0.99,
        lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    advantages = torch.zeros_like(values)
    next_value, next_advantage = last_value, torch.zeros_like(last_value)
    for t in reversed(range(rewards.shape[0])):
        alive = 1.0 - dones[t]
        delta = rewards[t] + gamma * alive * next_value - values[t]
        next_advantage = delta + gamma * lam * alive * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values


def normalize(advantages: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    if not enabled:
        return advantages
    return (advantages - advantages.mean()) / (advantages.std() + NORMALIZE_EPS)


class _PolicyGradientLoss(nn.Module):
    def __init__(self, value_coef: float = 0.5, entropy_coef: float = 0.01,
                 normalize_advantages: bool = True) -> None:
        super().__init__()
        self.value_coef = value_coef
        self.entropy_coef = entropy_coef
        self.normalize_advantages = normalize_advantages

    def _common(self, logits, values, actions, advantages, returns):
        logp = log_softmax(logits, -1)                                 # (N, A)
        taken = logp.gather(-1, actions[:, None])[:, 0]                # lp (N,)
        entropy = -(logp.exp() * logp).sum(-1).mean()                  # H
        value_loss = 0.5 * ((values - returns) ** 2).mean()            # L_v
        return taken, entropy, normalize(advantages, self.normalize_advantages), value_loss

    def _total(self, policy_loss, value_loss, entropy):
        return policy_loss + self.value_coef * value_loss - self.entropy_coef * entropy

    def extra_repr(self) -> str:
        return (f"value_coef={self.value_coef}, entropy_coef={self.entropy_coef}, "
                f"normalize_advantages={self.normalize_advantages}")


class ReinforceLoss(_PolicyGradientLoss):
    """-mean(lp Â) + c_v L_v - c_e H; ``old_log_probs`` is not used."""

    def __init__(self, value_coef: float = 0.5, entropy_coef: float = 0.0,
                 normalize_advantages: bool = False) -> None:
        super().__init__(value_coef, entropy_coef, normalize_advantages)

    def forward(self, logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
                old_log_probs: torch.Tensor, advantages: torch.Tensor,
                returns: torch.Tensor) -> tuple[torch.Tensor, ...]:
        taken, entropy, normalized, value_loss = self._common(logits, values, actions,
                                                              advantages, returns)
        policy_loss = -(taken * normalized).mean()
        return self._total(policy_loss, value_loss, entropy), policy_loss, value_loss, entropy


class PPOLoss(_PolicyGradientLoss):
    """-mean(min(ρÂ, clamp(ρ)Â)) + c_v L_v - c_e H, and the KL and clipped fraction."""

    def __init__(self, clip_eps: float = 0.2, value_coef: float = 0.5,
                 entropy_coef: float = 0.01, normalize_advantages: bool = True) -> None:
        super().__init__(value_coef, entropy_coef, normalize_advantages)
        self.clip_eps = clip_eps

    def forward(self, logits: torch.Tensor, values: torch.Tensor, actions: torch.Tensor,
                old_log_probs: torch.Tensor, advantages: torch.Tensor,
                returns: torch.Tensor) -> tuple[torch.Tensor, ...]:
        taken, entropy, normalized, value_loss = self._common(logits, values, actions,
                                                              advantages, returns)
        log_ratio = taken - old_log_probs
        ratio = log_ratio.exp()
        clipped = ratio.clamp(1.0 - self.clip_eps, 1.0 + self.clip_eps)
        policy_loss = -torch.min(ratio * normalized, clipped * normalized).mean()
        with torch.no_grad():
            approx_kl = ((ratio - 1.0) - log_ratio).mean()
            clip_fraction = ((ratio - 1.0).abs() > self.clip_eps).to(ratio.dtype).mean()
        return (self._total(policy_loss, value_loss, entropy), policy_loss, value_loss, entropy,
                approx_kl, clip_fraction)

    def extra_repr(self) -> str:
        return f"clip_eps={self.clip_eps}, " + super().extra_repr()


def update(model: ActorCritic, loss_fn: nn.Module, optimizer: Any,
           rollout: dict[str, torch.Tensor], gamma: float, lam: float,
           epochs: int = 1) -> dict[str, torch.Tensor]:
    """GAE from the rollout's values, then ``epochs`` full-batch steps of ``loss_fn``."""
    obs = rollout["obs"]
    steps, envs, dim = obs.shape
    flat_obs = obs.reshape(steps * envs, dim)
    actions = rollout["actions"].reshape(-1)
    with torch.no_grad():
        logits, values = model(flat_obs)
        _, last_value = model(rollout["last_obs"])
        advantages, returns = gae(rollout["rewards"], values.reshape(steps, envs),
                                  rollout["dones"], last_value, gamma, lam)
        old_log_probs = log_softmax(logits, -1).gather(-1, actions[:, None])[:, 0]
    for _ in range(epochs):
        logits, values = model(flat_obs)
        outputs = loss_fn(logits, values, actions, old_log_probs, advantages.reshape(-1),
                          returns.reshape(-1))
        optimizer.zero_grad()
        outputs[0].backward()
        optimizer.step()
    names = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
    stats = {k: v.detach() for k, v in zip(names[:len(outputs)], outputs, strict=True)}
    return {"advantages": advantages} | stats
