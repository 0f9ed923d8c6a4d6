r"""Generalization by hand: overfitting made visible, with the NumPy training loop.

A model fitted to n training points minimizes the empirical risk
R_train(w) = (1/n) sum_i L(f_w(x_i), y_i); what matters is the risk on new data, estimated on
a held-out validation set, R_val. Their difference, the generalization gap
R_val - R_train, grows with the model's capacity and shrinks with the amount of data:

- model size: more hidden units fit the training points more closely -- R_train falls, and
  past some size R_val rises again (the network memorizes the noise);
- data set size: more points make the training set a better sample of the distribution, so
  R_train rises towards R_val and the gap closes;
- weight decay (an L2 penalty (lambda/2) ||w||^2, i.e. g <- g + lambda w in every step)
  pulls weights towards 0, limiting capacity: a smaller gap, at some cost in R_train;
- dropout (each hidden unit kept with probability 1 - p and scaled by 1/(1-p) in training)
  keeps units from co-adapting: R_train measured with dropout on rises, the gap shrinks.

``sweep`` trains one model per value of one setting (``hidden``, ``n_train``,
``weight_decay`` or ``dropout``) with ``numpy_impl.training.training_loop``'s Trainer and
stacks the per-epoch curves: train and validation loss and accuracy, shape (values, epochs).
The torch twin does the same with the torch Trainer; the comparison hands both the same data,
initial weights, epoch orders and dropout masks.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from numpy_impl.training.training_loop import Classifier, Trainer

__all__ = ["Classifier", "Trainer", "generalization_gap", "sweep"]

SETTINGS = ("hidden", "n_train", "weight_decay", "dropout")


def generalization_gap(curves: dict[str, np.ndarray]) -> np.ndarray:
    """R_val - R_train per value and epoch."""
    return curves["val_loss"] - curves["train_loss"]


def sweep(values: Sequence[float], train_one: Callable[[Any], dict[str, list[float]]]
          ) -> dict[str, np.ndarray]:
    """Curves for each value: ``train_one(value)`` trains a fresh model and returns its
    history; the result stacks them, {"train_loss": (values, epochs), ...}."""
    histories = [train_one(value) for value in values]
    curves = {name: np.array([h[name] for h in histories]) for name in histories[0]}
    curves["gap"] = generalization_gap(curves)
    return curves
