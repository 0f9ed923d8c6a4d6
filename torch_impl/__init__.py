"""PyTorch twins: each concept written idiomatically with torch.nn and autograd."""
