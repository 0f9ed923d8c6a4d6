"""Shared test set-up: one thread for BLAS and for torch.

The suite runs many comparisons on small tensors, where thread start-up and spin-waiting cost
more than they save -- on the 2-core CI machine, and far more when it is shared (a 16x784 by
784x128 product measured 13.7 ms with OpenBLAS's threads vs 0.1 ms on one). The BLAS variables
must be set before NumPy is first imported, which is why they come before any import here.
"""
import os

for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import torch  # noqa: E402

torch.set_num_threads(1)
