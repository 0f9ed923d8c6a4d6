"""The `evaluation` family: PyTorch twins."""
