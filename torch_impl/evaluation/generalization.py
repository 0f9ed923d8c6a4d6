r"""Generalization in PyTorch: overfitting made visible, with the torch training loop.

The generalization gap R_val - R_train against model size (hidden units), data set size
(training points), weight decay (``torch.optim.SGD(weight_decay=lambda)``: g <- g + lambda w)
and dropout (keep probability 1 - p, scale 1/(1-p)). ``sweep`` trains one model per value with
``torch_impl.training.training_loop``'s Trainer and stacks the per-epoch curves, shape
(values, epochs).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from torch_impl.training.training_loop import Classifier, Trainer

__all__ = ["Classifier", "Trainer", "generalization_gap", "sweep"]

SETTINGS = ("hidden", "n_train", "weight_decay", "dropout")


def generalization_gap(curves: dict[str, torch.Tensor]) -> torch.Tensor:
    """R_val - R_train per value and epoch."""
    return curves["val_loss"] - curves["train_loss"]


def sweep(values: Sequence[float], train_one: Callable[[Any], dict[str, list[float]]]
          ) -> dict[str, torch.Tensor]:
    """Curves for each value, stacked: {"train_loss": (values, epochs), ...}."""
    histories = [train_one(value) for value in values]
    curves = {name: torch.tensor([h[name] for h in histories], dtype=torch.float64)
              for name in histories[0]}
    curves["gap"] = generalization_gap(curves)
    return curves
