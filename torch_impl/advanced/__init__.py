"""The `advanced` family: PyTorch twins."""
