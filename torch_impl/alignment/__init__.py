"""Alignment: reward modeling, preference optimization (DPO), policy gradients, in PyTorch."""
