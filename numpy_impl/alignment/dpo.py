r"""Direct preference optimization (DPO): a policy learns from preference pairs directly, its
reward being implicit in how far it has moved from a frozen reference model.

Sequence log-probabilities. A language model gives logits z (B, T, V) at every position; the
token that follows position t is labels y (B, T); the response mask m (B, T) is 1 where that
token belongs to the response (prompt tokens and padding do not count):

    lp_{b,t} = log_softmax(z_{b,t})[y_{b,t}] = z_{b,t,y} - log Σ_v e^{z_{b,t,v}}    (B, T)
    S_b      = Σ_t m_{b,t} lp_{b,t}                                                (B,)

DPO loss per pair, from the summed log-probabilities of the chosen and rejected responses under
the policy (π_c, π_r) and the reference (ρ_c, ρ_r), with temperature β -- the conventions of
TRL's ``dpo_loss`` (argument order, per-pair losses, the implicit rewards):

    h   = (π_c - π_r) - (ρ_c - ρ_r)                       (B,)   how much more the policy
                                                                 prefers chosen than the reference
    sigmoid (DPO, with label smoothing ε = conservative DPO):
        l = -(1 - ε) log σ(β h) - ε log σ(-β h) = (1 - ε) softplus(-β h) + ε softplus(β h)
    ipo (IPO: a squared loss with target 1/(2β)):
        l = (h - 1/(2β))²
    chosen_rewards   = β (π_c - ρ_c)                       implicit rewards, reported only
    rejected_rewards = β (π_r - ρ_r)                       (no gradient flows through them)

``dpo_loss`` takes the log-probabilities as given, as TRL's does; TRL's trainer divides them by
the response length before the IPO loss (its log-probabilities are then per-token means), while
``DPOLoss`` here uses the sums S_b for every loss type.

``DPOLoss`` takes the logits of a concatenated batch (2B rows: the B chosen responses first,
then the B rejected ones, each after its prompt) for policy and reference, and returns the mean
loss over pairs and both reward vectors.

Backward, given g = dL'/dL (1 in training):

    dl_b  = g / B                                          mean over pairs
    sigmoid: dh = dl β [-(1 - ε) σ(-β h) + ε σ(β h)]       softplus' = σ
    ipo:     dh = dl 2 (h - 1/(2β))
    dπ_c = dh,  dπ_r = -dh,  dρ_c = -dh,  dρ_r = dh         h's four terms
    dlp_{b,t} = m_{b,t} dS_b                               the masked sum: zero outside responses
    dz_{b,t,v} = dlp_{b,t} (1[v = y_{b,t}] - softmax(z_{b,t})_v)   log-softmax, gathered at y

The reference's logits get the same gradient with the opposite signs; training never uses it
(the reference is frozen), but it is the derivative, so the comparison checks it too.

Training: the policy here is a bigram language model (``BigramPolicy``: the logits at position
t are a row of a (V, V) table, chosen by token t), trained with Adam or SGD from
numpy_impl.training; the reference is a frozen copy of its initial weights.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from numpy_impl.layers.activations import log_softmax, sigmoid, softplus
from numpy_impl.layers.embedding import Embedding
from numpy_impl.module import Module

LOSS_TYPES = ("sigmoid", "ipo")


# --- log-probabilities of the response tokens ---------------------------------------------------
def sequence_log_probs(logits: np.ndarray, labels: np.ndarray, loss_mask: np.ndarray):
    """S_b = Σ_t m_{b,t} log_softmax(z_{b,t})[y_{b,t}]; returns (S (B,), cache)."""
    logp = log_softmax(logits, -1)                                     # (B, T, V)
    token_logp = np.take_along_axis(logp, labels[..., None], -1)[..., 0]  # (B, T) gathered at y
    mask = loss_mask.astype(logits.dtype)                              # (B, T)
    return (mask * token_logp).sum(axis=-1), (logp, labels, mask)      # (B,)


def sequence_log_probs_backward(grad_logps: np.ndarray, cache) -> np.ndarray:
    """dL/dz (B, T, V) from dL/dS (B,)."""
    logp, labels, mask = cache
    d_token = mask * grad_logps[:, None]                               # (B, T) masked sum
    d_logp = np.zeros_like(logp)                                       # (B, T, V)
    np.put_along_axis(d_logp, labels[..., None], d_token[..., None], -1)  # the gather's scatter
    # log-softmax: dz = dlogp - softmax Σ_v dlogp (here Σ_v dlogp = d_token)
    return d_logp - np.exp(logp) * d_token[..., None]                  # (B, T, V)


# --- the DPO loss (TRL's dpo_loss conventions) ---------------------------------------------------
def dpo_logits(policy_chosen_logps: np.ndarray, policy_rejected_logps: np.ndarray,
               reference_chosen_logps: np.ndarray,
               reference_rejected_logps: np.ndarray) -> np.ndarray:
    """h = (π_c - π_r) - (ρ_c - ρ_r), per pair (B,)."""
    pi_logratios = policy_chosen_logps - policy_rejected_logps         # (B,)
    ref_logratios = reference_chosen_logps - reference_rejected_logps  # (B,)
    return pi_logratios - ref_logratios


def dpo_loss(policy_chosen_logps: np.ndarray, policy_rejected_logps: np.ndarray,
             reference_chosen_logps: np.ndarray, reference_rejected_logps: np.ndarray,
             beta: float = 0.1, label_smoothing: float = 0.0, loss_type: str = "sigmoid",
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(losses (B,), chosen_rewards (B,), rejected_rewards (B,)), as TRL's ``dpo_loss``."""
    h = dpo_logits(policy_chosen_logps, policy_rejected_logps, reference_chosen_logps,
                   reference_rejected_logps)                           # (B,)
    if loss_type == "sigmoid":
        losses = (1.0 - label_smoothing) * softplus(-beta * h) \
            + label_smoothing * softplus(beta * h)                     # -log σ(βh), smoothed
    elif loss_type == "ipo":
        losses = (h - 1.0 / (2.0 * beta)) ** 2
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}; expected one of {LOSS_TYPES}")
    chosen_rewards = beta * (policy_chosen_logps - reference_chosen_logps)        # (B,)
    rejected_rewards = beta * (policy_rejected_logps - reference_rejected_logps)  # (B,)
    return losses, chosen_rewards, rejected_rewards


def dpo_loss_backward(grad_losses: np.ndarray, h: np.ndarray, beta: float = 0.1,
                      label_smoothing: float = 0.0, loss_type: str = "sigmoid",
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(dπ_c, dπ_r, dρ_c, dρ_r) from dL/dlosses (B,) and h (B,)."""
    if loss_type == "sigmoid":
        dh = grad_losses * beta * (-(1.0 - label_smoothing) * sigmoid(-beta * h)
                                   + label_smoothing * sigmoid(beta * h))  # softplus' = σ
    else:
        dh = grad_losses * 2.0 * (h - 1.0 / (2.0 * beta))                # the square
    return dh, -dh, -dh, dh                                            # h's four terms


class DPOLoss(Module):
    """The DPO objective on a concatenated batch, from logits.

    ``forward(policy_logits, reference_logits, labels, loss_mask)``: logits (2B, T, V), labels
    (2B, T) integer, loss_mask (2B, T) boolean; rows [:B] are the chosen responses, [B:] the
    rejected. Returns (loss (), chosen_rewards (B,), rejected_rewards (B,)).
    ``backward((g, _, _))`` returns (dL/dpolicy_logits, dL/dreference_logits).
    """

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

    def forward(self, policy_logits: np.ndarray, reference_logits: np.ndarray,
                labels: np.ndarray, loss_mask: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        labels, loss_mask = np.asarray(labels), np.asarray(loss_mask)
        if policy_logits.shape != reference_logits.shape or policy_logits.shape[0] % 2:
            raise ValueError(f"expected policy and reference logits of one shape (2B, T, V), got "
                             f"{policy_logits.shape} and {reference_logits.shape}")
        b = policy_logits.shape[0] // 2
        policy_logps, self._policy_cache = sequence_log_probs(policy_logits, labels, loss_mask)
        reference_logps, self._reference_cache = sequence_log_probs(reference_logits, labels,
                                                                    loss_mask)  # (2B,) each
        args = (policy_logps[:b], policy_logps[b:], reference_logps[:b], reference_logps[b:])
        losses, chosen_rewards, rejected_rewards = dpo_loss(
            *args, beta=self.beta, label_smoothing=self.label_smoothing,
            loss_type=self.loss_type)                                  # (B,) each
        self._h = dpo_logits(*args)                                    # (B,)
        return losses.mean(), chosen_rewards, rejected_rewards

    def backward(self, grad_output: Any) -> tuple[np.ndarray, np.ndarray]:
        g = grad_output[0] if isinstance(grad_output, tuple) else grad_output  # rewards: none
        b = self._h.shape[0]
        d_losses = np.broadcast_to(np.asarray(g) / b, (b,))            # (B,) the mean
        d_pc, d_pr, d_rc, d_rr = dpo_loss_backward(d_losses, self._h, self.beta,
                                                   self.label_smoothing, self.loss_type)
        d_policy = sequence_log_probs_backward(np.concatenate([d_pc, d_pr]),
                                               self._policy_cache)     # (2B, T, V)
        d_reference = sequence_log_probs_backward(np.concatenate([d_rc, d_rr]),
                                                  self._reference_cache)
        return d_policy, d_reference

    def extra_repr(self) -> str:
        return f"beta={self.beta}, label_smoothing={self.label_smoothing}, " \
               f"loss_type={self.loss_type!r}"


# --- the policy: a bigram language model --------------------------------------------------------
class BigramPolicy(Module):
    """logits[b, t] = W[tokens[b, t]]: the next-token logits are a row of a (V, V) table."""

    def __init__(self, vocab_size: int = 8) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.table = Embedding(vocab_size, vocab_size)                # W

    def forward(self, tokens: np.ndarray) -> np.ndarray:
        return self.table(tokens)                                      # (B, T, V)

    def backward(self, grad_output: np.ndarray) -> None:
        self.table.backward(grad_output)                               # scatter-add into W
        return None                                                    # token ids: no gradient

    def extra_repr(self) -> str:
        return f"vocab_size={self.vocab_size}"


def train_step(policy: BigramPolicy, reference: BigramPolicy, loss_fn: DPOLoss, optimizer: Any,
               tokens: np.ndarray, labels: np.ndarray,
               loss_mask: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """One DPO step on a concatenated batch: the loss and both implicit rewards (B,), before
    the update."""
    reference_logits = reference(tokens)                               # frozen: no backward
    loss, chosen_rewards, rejected_rewards = loss_fn(policy(tokens), reference_logits, labels,
                                                     loss_mask)
    optimizer.zero_grad()
    d_policy, _ = loss_fn.backward((np.ones((), dtype=loss.dtype), None, None))
    policy.backward(d_policy)
    optimizer.step()
    return float(loss), chosen_rewards, rejected_rewards
