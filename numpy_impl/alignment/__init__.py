"""Alignment: reward modeling, preference optimization (DPO), policy gradients, by hand in NumPy."""
