"""The `transformer` family in idiomatic PyTorch: autograd does the backward."""
