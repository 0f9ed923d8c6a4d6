"""The `layers` family: PyTorch twins (autograd does the backward)."""
