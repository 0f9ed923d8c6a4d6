"""The `advanced` family in idiomatic PyTorch: autograd does the backward."""
