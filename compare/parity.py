"""Training parity: both twins trained step by step from one state, on the same batches.

A concept with training cases (``Case.options`` with ``steps``, ``optimizer`` and
``optimizer_options``) passes ``training_runner(batches, train_numpy, train_torch)`` as its
``run``: training cases compare the loss at every step and every parameter after the last
(``step7/loss``, ``step20/param.fc.weight``); every other case is one forward and backward
(``run_module``).

- ``batches(case, trial) -> list``: the training batches, drawn once, through ``trial.cast``;
- ``train_numpy(model, batches, optimizer, options)`` and ``train_torch(...)``: train a model
  with the named optimizer (``numpy_impl.training.optimizers`` / ``torch.optim``) and return
  (losses per step, {parameter name: final value}).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from compare.concept import Case, Outcome, Trial
from compare.runner import initial_state, numpy_twin, run_module, torch_module

Train = Callable[[Any, list, str, dict], tuple[np.ndarray, dict[str, np.ndarray]]]


def step_values(losses: np.ndarray, params: dict[str, np.ndarray],
                dtype: np.dtype) -> dict[str, np.ndarray]:
    """The loss of every step and the parameters after the last, named for the report."""
    values = {f"step{k}/loss": np.array(loss, dtype=dtype) for k, loss in enumerate(losses, 1)}
    values.update({f"step{len(losses)}/param.{n}": p for n, p in params.items()})
    return values


def training_runner(batches: Callable[[Case, Trial], list], train_numpy: Train,
                    train_torch: Train) -> Callable[..., Outcome]:
    """A concept's ``run``: training cases train both twins (and the built-in model)."""

    def run(case: Case, trial: Trial, numpy_cls: Any = None, torch_cls: Any = None) -> Outcome:
        if "steps" not in case.options:
            return run_module(case, trial, numpy_cls, torch_cls)
        state = initial_state(case, trial, trial.rng())
        data = batches(case, trial)
        optimizer, options = case.options["optimizer"], case.options["optimizer_options"]
        numpy_model = numpy_twin(case, state, trial, numpy_cls)
        torch_model = torch_module(torch_cls or case.torch, case, state, trial)
        outcome = Outcome(
            numpy=step_values(*train_numpy(numpy_model, data, optimizer, options), trial.np_dtype),
            torch=step_values(*train_torch(torch_model, data, optimizer, options), trial.np_dtype))
        if trial.builtin and case.builtin is not None:
            builtin = torch_module(case.builtin, case, state, trial)
            outcome.builtin = step_values(*train_torch(builtin, data, optimizer, options),
                                          trial.np_dtype)
        return outcome

    return run
