"""Shared test set-up."""
import torch

# The suite runs many tiny comparisons: one thread avoids thread start-up per torch call,
# which dominates on small tensors (and on a 2-core machine shared with other jobs).
torch.set_num_threads(1)
