"""The `language` family: PyTorch twins."""
