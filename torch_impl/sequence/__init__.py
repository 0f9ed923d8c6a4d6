"""The `sequence` family: PyTorch twins."""
