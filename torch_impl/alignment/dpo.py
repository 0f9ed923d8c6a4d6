r"""Direct preference optimization (DPO) in PyTorch: the formulas written out, autograd does
the backward, ``torch.optim`` the update.

    S_b = Σ_t m_{b,t} log_softmax(z_{b,t})[y_{b,t}]            masked response log-probability
    h   = (π_c - π_r) - (ρ_c - ρ_r)
    sigmoid: l = (1 - ε) softplus(-β h) + ε softplus(β h)      (-log σ(βh), label smoothing ε)
    ipo:     l = (h - 1/(2β))²
    chosen_rewards = β (π_c - ρ_c),  rejected_rewards = β (π_r - ρ_r)   detached, as TRL's

Same names, in the same order, as the NumPy twin; ``dpo_loss`` has TRL's argument order and
return values.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from torch_impl.layers.activations import log_softmax, softplus
from torch_impl.layers.embedding import Embedding

LOSS_TYPES = ("sigmoid", "ipo")


def sequence_log_probs(logits: torch.Tensor, labels: torch.Tensor,
                       loss_mask: torch.Tensor) -> torch.Tensor:
    """S_b (B,) from logits (B, T, V), labels (B, T), loss_mask (B, T)."""
    logp = log_softmax(logits, -1)                                     # (B, T, V)
    token_logp = logp.gather(-1, labels.unsqueeze(-1)).squeeze(-1)     # (B, T)
    return (token_logp * loss_mask.to(logits.dtype)).sum(-1)           # (B,)


def dpo_logits(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
               reference_chosen_logps: torch.Tensor,
               reference_rejected_logps: torch.Tensor) -> torch.Tensor:
    pi_logratios = policy_chosen_logps - policy_rejected_logps
    ref_logratios = reference_chosen_logps - reference_rejected_logps
    return pi_logratios - ref_logratios


def dpo_loss(policy_chosen_logps: torch.Tensor, policy_rejected_logps: torch.Tensor,
             reference_chosen_logps: torch.Tensor, reference_rejected_logps: torch.Tensor,
             beta: float = 0.1, label_smoothing: float = 0.0, loss_type: str = "sigmoid",
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(losses, chosen_rewards, rejected_rewards), each (B,), as TRL's ``dpo_loss``."""
    h = dpo_logits(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                   reference_rejected_logps)
    if loss_type == "sigmoid":
        losses = (1.0 - label_smoothing) * softplus(-beta * h) \
            + label_smoothing * softplus(beta * h)
    elif loss_type == "ipo":
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")
    chosen_rewards = beta * (policy_chosen_logps - reference_chosen_logps).detach()
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps).detach()
    return losses, chosen_rewards, rejected_rewards


class DPOLoss(nn.Module):
    """The DPO objective on a concatenated batch (chosen rows first), from logits."""

    def __init__(self, beta: float = 0.1, label_smoothing: float = 0.0,
                 loss_type: str = "sigmoid") -> None:
        super().__init__()
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")
        if not 0.0 <= label_smoothing <= 0.5:
            raise ValueError(f"label_smoothing must be in [0, 0.5], got {label_smoothing}")
        self.beta = beta
        self.label_smoothing = label_smoothing
        self.loss_type = loss_type

    def forward(self, policy_logits: torch.Tensor, reference_logits: torch.Tensor,
                labels: torch.Tensor, loss_mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if policy_logits.shape != reference_logits.shape or policy_logits.shape[0] % 2:
            raise ValueError(f"expected policy and reference logits of one shape (2B, T, V), got "
                             f"{tuple(policy_logits.shape)} and {tuple(reference_logits.shape)}")
        b = policy_logits.shape[0] // 2
        policy_logps = sequence_log_probs(policy_logits, labels, loss_mask)        # (2B,)
        reference_logps = sequence_log_probs(reference_logits, labels, loss_mask)  # (2B,)
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            policy_logps[:b], policy_logps[b:], reference_logps[:b], reference_logps[b:],
            beta=self.beta, label_smoothing=self.label_smoothing, loss_type=self.loss_type)
        return losses.mean(), chosen_rewards, rejected_rewards

    def extra_repr(self) -> str:
        return f"beta={self.beta}, label_smoothing={self.label_smoothing}, " \
               f"loss_type={self.loss_type!r}"


class BigramPolicy(nn.Module):
    """logits[b, t] = W[tokens[b, t]]."""

    def __init__(self, vocab_size: int = 8) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.table = Embedding(vocab_size, vocab_size)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table(tokens)                                      # (B, T, V)

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}"


def train_step(policy: BigramPolicy, reference: BigramPolicy, loss_fn: DPOLoss, optimizer: Any,
               tokens: torch.Tensor, labels: torch.Tensor,
               loss_mask: torch.Tensor) -> tuple[float, torch.Tensor, torch.Tensor]:
    """One DPO step: the loss and both implicit rewards, before the update."""
    with torch.no_grad():
        reference_logits = reference(tokens)                           # frozen
    loss, chosen_rewards, rejected_rewards = loss_fn(policy(tokens), reference_logits, labels,
                                                     loss_mask)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item(), chosen_rewards, rejected_rewards
