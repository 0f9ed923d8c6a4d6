"""The `training` family: PyTorch twins."""
