"""Compare ``Conv2d``: output; grads of x, weight, bias -- im2col + matmul by hand (NumPy) vs
unfold + matmul with autograd (torch), witnessed by ``torch.nn.Conv2d`` (``F.conv2d``).

Edge cases: strides (also larger than the kernel, so some pixels get no gradient), symmetric
and non-square padding, ``"same"`` with an even kernel (asymmetric padding) and with dilation,
``"valid"``, dilation, groups, depthwise (groups = in_channels, with a channel multiplier), no
bias, a batch of one, an unbatched (C, H, W) input, 1x1 kernels, non-square kernels and images.
Run: ``python -m compare.vision.conv2d``.
"""
from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from compare.concept import Bench, Case, Concept, randn
from numpy_impl.vision import conv2d as numpy_twin
from torch_impl.vision import conv2d as torch_twin


class QuietConv2d(nn.Conv2d):
    """The witness ``nn.Conv2d``, without its performance note for padding="same" with an
    even kernel (a zero-padded copy may be made): true, harmless, and noise in every run."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Using padding='same' with even kernel")
            return super().forward(x)


def _case(name: str, x_shape: tuple[int, ...], in_channels: int, out_channels: int,
          kernel_size: Any, **init: Any) -> Case:
    return Case(name, numpy=numpy_twin.Conv2d, torch=torch_twin.Conv2d, builtin=QuietConv2d,
                init=dict(in_channels=in_channels, out_channels=out_channels,
                          kernel_size=kernel_size, **init),
                inputs=dict(x=randn(*x_shape)))


CONCEPT = Concept(
    name="conv2d",
    family="vision",
    summary="2-D convolution y = W * x + b through im2col and one matrix product",
    compares="output; grads of x, weight, bias (stride, padding incl. 'same'/'valid', dilation, "
             "groups, depthwise, no bias, 1x1, non-square)",
    witness="nn.Conv2d",
    bench=Bench("Conv2d(16, 32, 3, padding=1) on x (32, 16, 28, 28)",
                cases=(_case("bench", (32, 16, 28, 28), 16, 32, 3, padding=1),)),
    cases=[
        _case("3x3", (2, 3, 6, 6), 3, 4, 3),
        _case("stride-2", (2, 3, 7, 8), 3, 4, 3, stride=2),
        _case("padding-1", (2, 2, 5, 5), 2, 3, 3, padding=1),
        _case("non-square", (2, 2, 6, 7), 2, 3, (2, 3), stride=(2, 1), padding=(1, 2)),
        _case("dilation-2", (2, 2, 7, 7), 2, 3, 3, dilation=2, padding=1),
        _case("stride-beyond-kernel", (1, 2, 8, 8), 2, 2, 2, stride=3),
        _case("groups-2", (2, 4, 5, 5), 4, 6, 3, groups=2, padding=1),
        _case("depthwise", (2, 3, 5, 5), 3, 6, 3, groups=3),
        _case("no-bias", (2, 3, 5, 5), 3, 2, 3, bias=False),
        _case("same-even-kernel", (2, 2, 5, 6), 2, 3, 4, padding="same"),
        _case("same-dilated", (2, 2, 6, 5), 2, 2, 3, padding="same", dilation=2),
        _case("valid", (2, 2, 5, 5), 2, 3, 3, padding="valid"),
        _case("batch-of-one", (1, 3, 5, 5), 3, 4, 3, padding=1),
        _case("unbatched", (3, 5, 5), 3, 2, 3),
        _case("1x1", (2, 4, 3, 3), 4, 5, 1),
        _case("kernel-fills-input", (2, 2, 3, 4), 2, 3, (3, 4)),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
