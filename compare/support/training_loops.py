"""What the training-run comparisons share (``training_loop``, ``generalization``): where their
checkpoints go, the batch size of every step, and the seeded initial state both twins start
from. A private helper: the registry skips files whose names start with ``_``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from compare.concept import Trial

# Checkpoints go to a temporary directory, in memory where Linux offers one: on an overlay
# file system creating and removing the files cost more than the training itself.
SCRATCH = "/dev/shm" if Path("/dev/shm").is_dir() else None


def step_batch_sizes(n_train: int, batch_size: int, max_epochs: int) -> list[int]:
    """The size of every training step's batch, epoch after epoch (the last may be short)."""
    per_epoch = [min(batch_size, n_train - start) for start in range(0, n_train, batch_size)]
    return per_epoch * max_epochs


def initial_state(cls: type, init: dict[str, Any], trial: Trial) -> dict[str, np.ndarray]:
    """The torch twin's own seeded initialization, in float64, rounded through the data dtype.
    ``cls`` is the case's torch twin, never a user's class: every run starts from one state."""
    torch.manual_seed(trial.seed)
    reference = cls(**init).to(dtype=torch.float64)
    return {k: trial.cast(v.detach().numpy().copy()) for k, v in reference.state_dict().items()}
