"""Compare the CNN-RNN hybrid: per-frame CNN features -> RNN(400 -> 32) -> last step ->
Linear(32 -> 5), on frame sequences (B, T, 1, 28, 28).

One forward and backward (the default runner): the logits under a random upstream gradient;
the gradient of every frame, of the CNN's convolutions (shared by all frames: their gradient
sums over frames), of the RNN's four weights and of the classifier; the feature sequence and
the last hidden state with their gradients (``inter.*``). Witness: ``BuiltinCNNRNN``, the same
model from ``nn.Conv2d``, ``nn.MaxPool2d``, ``F.relu``, ``nn.RNN`` and ``nn.Linear``, with the
same state_dict keys. Edge cases: one frame (no recurrence), a batch of one (the full-size
case), a longer sequence (the gradient travels back through every step), a ReLU RNN, three
input channels, and small images.

Run: ``python -m compare.vision.cnn_rnn``.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compare.concept import Bench, Case, Concept, uniform
from compare.support.vision_builtin import BuiltinCNNFeatures
from compare.tolerances import Tolerance
from numpy_impl.vision import cnn_rnn as numpy_twin
from torch_impl.vision import cnn_rnn as torch_twin


class BuiltinCNNRNN(nn.Module):
    """The same model from torch's built-in layers: same constructor and state_dict keys."""

    def __init__(self, num_classes: int = 5, hidden_size: int = 32, in_channels: int = 1,
                 channels: tuple[int, int] = (8, 16), kernel_size: int = 3,
                 image_size: int = 28, nonlinearity: str = "tanh") -> None:
        super().__init__()
        self.features = BuiltinCNNFeatures(in_channels, channels, kernel_size, image_size)
        self.rnn = nn.RNN(self.features.out_features, hidden_size, nonlinearity=nonlinearity,
                          batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps = x.shape[:2]
        f = self.features(x.flatten(0, 1)).unflatten(0, (batch, steps))  # (B, T, 400)
        hs, _ = self.rnn(f)                                                 # (B, T, 32)
        return self.fc(hs[:, -1])                                           # (B, 5)


SMALL = dict(channels=(2, 3), image_size=12)  # 12 -> 10 -> 5 -> 3 -> 1: 3 features per frame


def _case(name: str, x_shape: tuple[int, ...], tolerance: dict[str, Tolerance] | None = None,
          **init: Any) -> Case:
    return Case(name, numpy=numpy_twin.CNNRNN, torch=torch_twin.CNNRNN, builtin=BuiltinCNNRNN,
                init=init, inputs=dict(x=uniform(0.0, 1.0, *x_shape)), tolerance=tolerance or {})


CONCEPT = Concept(
    name="cnn_rnn",
    family="vision",
    summary="CNN-RNN hybrid: per-frame CNN features -> RNN(400 -> 32) -> last step -> "
            "Linear(32 -> 5) on (B, T, 1, 28, 28)",
    compares="logits; grads of the frames, the shared conv weights (summed over frames), the "
             "RNN's weights and the classifier; feature sequence and last hidden state and "
             "their grads",
    witness="nn.Conv2d, nn.MaxPool2d, F.relu, nn.RNN, nn.Linear",
    bench=Bench("CNNRNN on 16 sequences of 8 MNIST frames (16, 8, 1, 28, 28)",
                cases=(_case("bench", (16, 8, 1, 28, 28)),)),
    # Central differences carry their own rounding, eps |L| / h: up to 2.0e-10 here over seeds
    # 0-19 and 25, whatever the gradient's size. The frames' gradient in rgb-frames is small
    # (~2.5e-4, two pools and an RNN away from the loss), so that rounding reached 7.9e-7 of
    # it at seed 25, at the 1e-6 bound: the fd check gets an absolute floor 5x the rounding,
    # far below a wrong backward (off by the gradient's own size); the twins keep the default.
    tolerance={"fd": Tolerance(rtol=1e-6, atol=1e-9)},
    cases=[
        # full-size frames, one sequence of two: finite differences cost two forward passes
        # per checked element, so the batch and sequence variations run on 12x12 frames
        # 28x28 frames hold many ReLU and max-pool kinks, and an element whose step straddles
        # one is differenced from its clean side (the engine's kink rule), which is accurate to
        # h |f''| / 2, not h^2: up to 1.1e-6 over seeds 0-999 (conv2.weight, seed 713), 8.8e-7
        # on conv1.bias's 0.53 at seed 887, beyond its 1e-6. An fd floor 5x that for this case;
        # a wrong backward is off by the gradient's own size.
        _case("mnist-sizes", (1, 2, 1, 28, 28),
              tolerance={"fd": Tolerance(rtol=1e-6, atol=5.6e-6)}),
        _case("small", (3, 4, 1, 12, 12), num_classes=3, hidden_size=5, **SMALL),
        _case("one-frame", (2, 1, 1, 12, 12), num_classes=3, hidden_size=5, **SMALL),
        _case("long-sequence", (2, 9, 1, 12, 12), num_classes=2, hidden_size=4, **SMALL),
        _case("relu-rnn", (2, 4, 1, 12, 12), num_classes=3, hidden_size=5,
              nonlinearity="relu", **SMALL),
        _case("rgb-frames", (2, 2, 3, 10, 10), num_classes=4, hidden_size=6, in_channels=3,
              channels=(3, 4), image_size=10),
    ],
)

if __name__ == "__main__":
    from compare.cli import run_as_script
    run_as_script(CONCEPT.name)
