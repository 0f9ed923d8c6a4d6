"""Speed of one CNN training step (forward, cross-entropy, backward, Adam) in each twin, and
the full ``--train`` run's time and test accuracy.

Part 1: one ``train_step`` (``numpy_impl.vision.cnn`` / ``torch_impl.vision.cnn``) on a batch of
B generated-digit images, float32, for several batch sizes: the median of ``--repeat`` steps
after a warm-up, per twin, and the implied seconds per epoch of 8000 images. The built-in
model (``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.Linear``) is timed too, for scale.

Part 2 (``--full``): ``python -m compare.vision.cnn --train``'s loop on 8000 generated training
images, 3 epochs, batch 32, Adam lr 3e-3: each twin's training time and test accuracy per epoch.

Both twins get ``--threads`` threads (torch.set_num_threads; OpenBLAS, which NumPy's matmul
calls, through OPENBLAS_NUM_THREADS, set before NumPy loads).

Run: ``python benchmarks/cnn_train.py [--repeat N] [--threads N] [--full]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from functools import partial
from pathlib import Path

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--repeat", type=int, default=20, help="timed steps per size (default 20)")
PARSER.add_argument("--threads", type=int, default=1, help="threads for torch and OpenBLAS")
PARSER.add_argument("--full", action="store_true", help="also run the full 3-epoch training")
if __name__ == "__main__":
    # OpenBLAS reads its thread count once, when NumPy loads it: set it before the import
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(PARSER.parse_known_args()[0].threads)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

BATCHES = (16, 32, 64, 128)
EPOCH = 8000


def step_times(batch: int, repeat: int) -> dict[str, float]:
    """Median seconds of one training step per model, the three interleaved."""
    from compare.data.digits import digits
    from compare.vision.cnn import BuiltinCNN
    from numpy_impl.layers.losses import CrossEntropyLoss as NumpyCE
    from numpy_impl.training.optimizers import Adam
    from numpy_impl.vision import cnn as numpy_cnn
    from torch_impl.layers.losses import CrossEntropyLoss as TorchCE
    from torch_impl.vision import cnn as torch_cnn

    data = digits(batch, 0, 0, seed=0)
    x, y = np.array(data.x_train, dtype=np.float32), np.array(data.y_train)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(0)
    twin, builtin = torch_cnn.CNN(), BuiltinCNN()
    mine = numpy_cnn.CNN()
    mine.load_state_dict(twin.state_dict())
    steps = {
        "numpy": partial(numpy_cnn.train_step, mine, NumpyCE(),
                         Adam(mine.parameters(), lr=1e-3), x, y),
        "torch twin": partial(torch_cnn.train_step, twin, TorchCE(),
                              torch.optim.Adam(twin.parameters(), lr=1e-3), xt, yt),
        "torch built-in": partial(torch_cnn.train_step, builtin, torch.nn.CrossEntropyLoss(),
                                  torch.optim.Adam(builtin.parameters(), lr=1e-3), xt, yt),
    }
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up
        step()
    for _ in range(repeat):
        for name, step in steps.items():
            started = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    args = PARSER.parse_args()
    torch.set_num_threads(args.threads)
    print(f"CNN training step (forward + cross-entropy + backward + Adam), float32, "
          f"{args.threads} thread(s), median of {args.repeat}")
    print(f"{'batch':>5}  {'numpy ms':>9}  {'torch twin ms':>13}  {'built-in ms':>11}  "
          f"{'numpy / twin':>12}  {'numpy s/epoch':>13}  {'twin s/epoch':>12}")
    for batch in BATCHES:
        t = step_times(batch, args.repeat)
        print(f"{batch:5d}  {t['numpy'] * 1e3:9.2f}  {t['torch twin'] * 1e3:13.2f}  "
              f"{t['torch built-in'] * 1e3:11.2f}  {t['numpy'] / t['torch twin']:12.2f}  "
              f"{t['numpy'] * EPOCH / batch:13.2f}  {t['torch twin'] * EPOCH / batch:12.2f}")
    if args.full:
        from compare.data.digits import digits
        from compare.vision.cnn import train_both
        print(f"\nfull run: {EPOCH} generated training images, 2000 test images, 3 epochs, "
              "batch 32, Adam lr 3e-3")
        result = train_both(digits(EPOCH, 1000, 2000, seed=0), epochs=3, batch_size=32)
        for twin in ("numpy", "torch"):
            print(f"{twin}: {sum(result.seconds[twin]):.1f} s, test accuracy per epoch "
                  + ", ".join(f"{a:.4f}" for a in result.accuracy[twin]))


if __name__ == "__main__":
    main()
