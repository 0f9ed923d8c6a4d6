"""Speed of the WaveNet twins on the CPU: one SGD training step of the lecture's model, and one
forward + backward of the dilated causal Conv1d, NumPy by hand against torch.

Steps timed (each after a warm-up, interleaved so that load from other processes hits all
alike; the table shows the best run -- the figure to quote on a shared machine -- and the
median):

- ``train step``: ``WaveNet`` at the lecture's sizes (block_size 8, n_embd 24, n_hidden 128,
  76,579 parameters) on a batch of 32 contexts: forward, cross-entropy, backward, SGD update.
  torch: the twin (``torch_impl``) and the built-in model (nn layers, ``F.cross_entropy``);
- ``causal conv``: ``CausalConv1d(128, 128, kernel 2, dilation 4)`` on (32, 128, 64),
  forward + backward with a random upstream gradient, against ``nn.Conv1d`` (``F.conv1d``).

Threads: ``--threads`` for torch (torch.set_num_threads) and OpenBLAS (set before NumPy loads).
Run: ``python benchmarks/wavenet_train.py [--repeat N] [--threads N]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--repeat", type=int, default=50, help="timed runs per step (default 50)")
PARSER.add_argument("--threads", type=int, default=1, help="torch and OpenBLAS threads (1)")
if __name__ == "__main__":
    # OpenBLAS reads its thread count once, when NumPy loads it: set it before the import
    os.environ["OPENBLAS_NUM_THREADS"] = str(PARSER.parse_known_args()[0].threads)

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from compare.sequence.wavenet import BuiltinCausalConv1d, BuiltinWaveNet  # noqa: E402
from numpy_impl.sequence import wavenet as numpy_twin  # noqa: E402
from numpy_impl.training.optimizers import SGD  # noqa: E402
from torch_impl.sequence import wavenet as torch_twin  # noqa: E402


def timings_ms(steps: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    for step in steps.values():
        step()                                                   # warm-up
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(1e3 * (time.perf_counter() - start))
    return times


def train_steps(dtype: str) -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(0)
    X, Y = rng.integers(0, 27, (32, 8)), rng.integers(0, 27, 32)
    torch.manual_seed(0)
    builtin = BuiltinWaveNet().to(getattr(torch, dtype))
    twin = torch_twin.WaveNet().to(getattr(torch, dtype))
    twin.load_state_dict(builtin.state_dict())
    mine = numpy_twin.WaveNet().to(dtype)
    mine.load_state_dict(builtin.state_dict())
    opt_np = SGD(mine.parameters(), lr=1e-3)
    opts = {m: torch.optim.SGD(m.parameters(), lr=1e-3) for m in (twin, builtin)}
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    return {"numpy": lambda: numpy_twin.train_step(mine, opt_np, X, Y),
            "torch twin": lambda: torch_twin.train_step(twin, opts[twin], Xt, Yt),
            "torch built-in": lambda: torch_twin.train_step(builtin, opts[builtin], Xt, Yt)}


def conv_steps(dtype: str) -> dict[str, Callable[[], object]]:
    rng = np.random.default_rng(1)
    x, g = (rng.standard_normal((32, 128, 64)).astype(dtype) for _ in range(2))
    torch.manual_seed(0)
    builtin = BuiltinCausalConv1d(128, 128, 2, dilation=4).to(getattr(torch, dtype))
    twin = torch_twin.CausalConv1d(128, 128, 2, dilation=4).to(getattr(torch, dtype))
    twin.load_state_dict(builtin.state_dict())
    mine = numpy_twin.CausalConv1d(128, 128, 2, dilation=4).to(dtype)
    mine.load_state_dict(builtin.state_dict())
    xt, gt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(g)

    def numpy_step() -> None:
        mine(x)
        mine.backward(g)

    return {"numpy": numpy_step,
            "torch twin": lambda: twin(xt).backward(gt),
            "torch built-in": lambda: builtin(xt).backward(gt)}


def main() -> None:
    args = PARSER.parse_args()
    torch.set_num_threads(args.threads)
    print(f"threads: torch {torch.get_num_threads()}, OpenBLAS "
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}; best / median of {args.repeat} (ms)")
    print(f"{'step':<12} {'dtype':<8} {'numpy':>14} {'torch twin':>14} {'torch built-in':>15} "
          f"{'numpy/built-in':>15}")
    for label, make in (("train step", train_steps), ("causal conv", conv_steps)):
        for dtype in ("float32", "float64"):
            times = timings_ms(make(dtype), args.repeat)
            cells = {k: f"{min(v):6.2f} / {statistics.median(v):6.2f}" for k, v in times.items()}
            ratio = min(times["numpy"]) / min(times["torch built-in"])
            print(f"{label:<12} {dtype:<8} {cells['numpy']:>14} {cells['torch twin']:>14} "
                  f"{cells['torch built-in']:>15} {ratio:>14.2f}x")


if __name__ == "__main__":
    main()
