"""Compare ``BatchNorm1d``: per-channel normalization, batch statistics in training and
running statistics in eval, and the running-statistics update itself.

After the forward the engine compares the buffers too (``buffer.running_mean``,
``buffer.running_var``, ``buffer.num_batches_tracked``): the momentum update with the
unbiased variance, and the cumulative average of ``momentum=None``.

Witness: ``torch.nn.BatchNorm1d`` (``F.batch_norm``). Run: ``python -m compare.layers.batchnorm``.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from compare.concept import Bench, Case, Concept, Draw, perturb_parameters, randn
from numpy_impl.layers import batchnorm as numpy_twin
from torch_impl.layers import batchnorm as torch_twin


def with_running_stats(module: Any, rng: np.random.Generator) -> None:
    """Perturbed gamma and beta, running stats far from their (0, 1) init, 3 batches seen:
    eval then really uses them, and momentum=None averages over 4 batches, not 1."""
    perturb_parameters(module, rng)
    channels = module.running_mean.shape[0]
    module.running_mean.copy_(torch.from_numpy(rng.standard_normal(channels)))
    module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, channels)))  # positive
    module.num_batches_tracked.fill_(3)


def zero_variance_channel(n: int, c: int) -> Draw:
    """Channel 1 holds one value repeated over the batch: var = 0, only eps keeps r finite."""
    def draw(rng: np.random.Generator) -> np.ndarray:
        x = rng.standard_normal((n, c))
        x[:, 1] = rng.standard_normal()
        return x
    return draw


def _case(name: str, x: Draw, num_features: int, *, train: bool = True,
          prepare: Any = perturb_parameters, **options: Any) -> Case:
    return Case(name, numpy=numpy_twin.BatchNorm1d, torch=torch_twin.BatchNorm1d,
                builtin=nn.BatchNorm1d, init=dict(num_features=num_features, **options),
                inputs=dict(x=x), train=train, prepare=prepare)


CONCEPT = Concept(
    name="batchnorm",
    family="layers",
    summary="batch normalization (BatchNorm1d) with running statistics",
    compares="output; grads of x, weight, bias; running_mean, running_var, num_batches_tracked",
    witness="nn.BatchNorm1d",
    bench=Bench("BatchNorm1d(512) in training on x (4096, 512)",
                cases=(_case("bench", randn(4096, 512), 512),)),
    cases=[
        _case("2d-train", randn(6, 4), 4),
        _case("3d-train", randn(3, 4, 5), 4),
        _case("eval-running-stats", randn(5, 3), 3, train=False, prepare=with_running_stats),
        _case("3d-eval", randn(2, 3, 4), 3, train=False, prepare=with_running_stats),
        _case("momentum-none", randn(5, 3), 3, momentum=None, prepare=with_running_stats),
        _case("no-affine", randn(5, 3), 3, affine=False),
        _case("no-running-stats", randn(5, 3), 3, track_running_stats=False),
        _case("no-running-stats-eval", randn(2, 3, 4), 3, train=False,
              track_running_stats=False),
        # Two values per channel standardize to -1 and +1 whatever they are, so with a unit
        # spread dL/dx is only the eps residue (~ eps / var of the rest): a spread of 0.01
        # (var ~ 5e-5, comparable to eps) keeps that gradient large enough to check.
        # The running variance here is the sample variance times M / (M - 1) = 2.
        _case("batch-of-two", randn(2, 3, scale=0.01), 3),
        _case("zero-variance-channel", zero_variance_channel(6, 3), 3),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
