"""The `vision` family: PyTorch twins."""
