"""Speed of the hand-written NumPy ``LSTM`` (forward, and backpropagation through time)
against ``nn.LSTM`` on the CPU, forward + backward.

Shape: x (T, B, I) = (50, 32, 64), ``LSTM(64, 128)`` (one layer, h0 = c0 = 0), a random
upstream gradient on the output sequence; float64 and float32 (the issue's target: NumPy
within 3x of ``nn.LSTM``). Both sides get 2 threads (``--threads``: torch.set_num_threads;
OpenBLAS, which NumPy's matmul calls, through OPENBLAS_NUM_THREADS, set before NumPy loads).
Each step runs ``--repeat`` times after a warm-up, the three interleaved; the table shows the
best run (the least disturbed by other processes: the figure to quote on a shared machine)
and the median.

Columns: ``numpy`` the NumPy twin; ``torch nn.LSTM`` the built-in (its fused CPU kernel);
``torch twin`` our written-out cell with autograd; the last column divides the first by the
second.

Run: ``python benchmarks/lstm_speed.py [--repeat N] [--threads N]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--repeat", type=int, default=20, help="timed runs per step (default 20)")
PARSER.add_argument("--threads", type=int, default=2,
                    help="threads for torch and for OpenBLAS (default 2, the issue's setting)")
if __name__ == "__main__":
    # OpenBLAS reads its thread count once, when NumPy loads it: set it before the import
    os.environ["OPENBLAS_NUM_THREADS"] = str(PARSER.parse_known_args()[0].threads)

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from numpy_impl.sequence.lstm import LSTM as NumpyLSTM  # noqa: E402
from torch_impl.sequence.lstm import LSTM as TorchLSTM  # noqa: E402

STEPS, BATCH, INPUT, HIDDEN = 50, 32, 64, 128


def timings_ms(steps: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Each step ``repeat`` times, interleaved (a, b, c, a, b, c, ...) so that load from
    other processes on a shared machine hits all of them alike; after one warm-up each."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(1e3 * (time.perf_counter() - start))
    return times


def measure(dtype: str, repeat: int) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((STEPS, BATCH, INPUT)).astype(dtype)
    g = rng.standard_normal((STEPS, BATCH, HIDDEN)).astype(dtype)
    torch.manual_seed(0)
    builtin = nn.LSTM(INPUT, HIDDEN).to(getattr(torch, dtype))
    twin = TorchLSTM(INPUT, HIDDEN).to(getattr(torch, dtype))
    twin.load_state_dict(builtin.state_dict())
    mine = NumpyLSTM(INPUT, HIDDEN).to(dtype)
    mine.load_state_dict(builtin.state_dict())
    xt, gt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(g)

    def numpy_step() -> None:
        mine(x)
        mine.backward(g)

    def torch_step(module: nn.Module) -> Callable[[], None]:
        def step() -> None:
            module(xt)[0].backward(gt)
        return step

    # NumPy and the built-in agree before they are timed (a fast wrong answer is no answer)
    mine.zero_grad()
    mine(x)
    dx = mine.backward(g)
    builtin.zero_grad()
    xt.grad = None
    torch_step(builtin)()
    tol = 1e-10 if dtype == "float64" else 1e-4
    for ours, theirs in ((dx, xt.grad), (mine.weight_hh_l0.grad, builtin.weight_hh_l0.grad)):
        error = np.abs(ours - theirs.numpy()).max() / np.abs(theirs.numpy()).max()
        assert error < tol, f"NumPy and torch disagree ({error:.1e}): not timing"
    return timings_ms({"numpy": numpy_step, "torch nn.LSTM": torch_step(builtin),
                       "torch twin": torch_step(twin)}, repeat)


def main(argv: list[str] | None = None) -> None:
    args = PARSER.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"LSTM({INPUT}, {HIDDEN}) forward + backward on x (T, B, I) = ({STEPS}, {BATCH}, "
          f"{INPUT}), best and median of {args.repeat} interleaved runs, torch "
          f"{torch.__version__} ({torch.get_num_threads()} threads), NumPy {np.__version__} "
          f"(OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'default')})")
    names = ("numpy", "torch nn.LSTM", "torch twin")
    print(f"{'dtype':<8} {'statistic':<9} " + " ".join(f"{n + ' ms':>18}" for n in names)
          + f" {'numpy / nn.LSTM':>16}")
    for dtype in ("float64", "float32"):
        times = measure(dtype, args.repeat)
        for label, statistic in (("best", min), ("median", statistics.median)):
            row = {name: statistic(times[name]) for name in names}
            print(f"{dtype:<8} {label:<9} " + " ".join(f"{row[n]:>18.2f}" for n in names)
                  + f" {row['numpy'] / row['torch nn.LSTM']:>15.2f}x")


if __name__ == "__main__":
    main()
