"""Speed and peak memory of one GPT training step: the hand-written NumPy GPT against torch on
the CPU.

One step = forward with targets, backward, ``clip_grad_norm_(1.0)``, AdamW (nanoGPT's two
groups), in float32, at nanoGPT's small character setting: n_layer 4, n_head 4, n_embd 128,
block_size 64, batch 16, vocab 65 (the issue's target: NumPy time / torch time <= 2.5 on 2
threads). Both sides get ``--threads`` threads (torch.set_num_threads; OpenBLAS, which
NumPy's matmul calls, through OPENBLAS_NUM_THREADS, set before NumPy loads). The three steps
run interleaved ``--repeat`` times after a warm-up; the table shows the best run (the least
disturbed by other processes) and the median.

Columns: ``numpy`` the NumPy twin (``numpy_impl.transformer.gpt``); ``torch built-in`` the same
model from ``nn.Embedding``, ``nn.LayerNorm``, ``F.scaled_dot_product_attention``, ``nn.GELU``,
``nn.Linear`` with ``torch.optim.AdamW`` and ``torch.nn.utils.clip_grad_norm_`` (what nanoGPT
runs); ``torch twin`` the library's torch GPT (hand-written layers, explicit attention).

Peak memory: each implementation once more in a fresh process: the peak resident set size
(Linux's VmHWM, reset through ``/proc/self/clear_refs`` after the imports) during building the
model and two steps, minus the resident size before -- weights, gradients, optimizer state
and activations included.

Run: ``python benchmarks/gpt_step.py [--repeat N] [--threads N]``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--repeat", type=int, default=20, help="timed runs per step (default 20)")
PARSER.add_argument("--threads", type=int, default=2,
                    help="threads for torch and for OpenBLAS (default 2, the issue's setting)")
PARSER.add_argument("--memory-of", choices=("numpy", "torch built-in", "torch twin"),
                    help=argparse.SUPPRESS)  # internal: one step in this process, print the RSS
if __name__ == "__main__":
    os.environ["OPENBLAS_NUM_THREADS"] = str(PARSER.parse_known_args()[0].threads)

import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from compare.transformer.gpt import BuiltinGPT  # noqa: E402
from numpy_impl.training.grad_clipping import clip_grad_norm_ as numpy_clip  # noqa: E402
from numpy_impl.transformer import gpt as numpy_gpt  # noqa: E402
from torch_impl.training.grad_clipping import clip_grad_norm_ as twin_clip  # noqa: E402
from torch_impl.transformer import gpt as torch_gpt  # noqa: E402

CONFIG = dict(block_size=64, vocab_size=65, n_layer=4, n_head=4, n_embd=128, dropout=0.0,
              bias=True)
BATCH = 16
NAMES = ("numpy", "torch built-in", "torch twin")


def steps() -> dict[str, Callable[[], float]]:
    """One training step per implementation, all from the same weights and batch."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, CONFIG["vocab_size"], (BATCH, CONFIG["block_size"]))
    y = rng.integers(0, CONFIG["vocab_size"], (BATCH, CONFIG["block_size"]))
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    torch.manual_seed(0)
    twin = torch_gpt.GPT(torch_gpt.GPTConfig(**CONFIG))
    builtin = BuiltinGPT(torch_gpt.GPTConfig(**CONFIG))
    builtin.load_state_dict(twin.state_dict())
    mine = numpy_gpt.GPT(numpy_gpt.GPTConfig(**CONFIG))
    mine.load_state_dict(twin.state_dict())
    args = (0.1, 1e-3, (0.9, 0.95), "cpu")
    optimizers = {"numpy": mine.configure_optimizers(*args),
                  "torch built-in": builtin.configure_optimizers(*args),
                  "torch twin": twin.configure_optimizers(*args)}

    def numpy_step() -> float:
        optimizers["numpy"].zero_grad()
        _, loss = mine(x, y)
        mine.backward(1.0)
        numpy_clip(mine.parameters(), 1.0)
        optimizers["numpy"].step()
        return float(loss)

    def torch_step(model: torch.nn.Module, name: str, clip: Callable) -> Callable[[], float]:
        def step() -> float:
            optimizers[name].zero_grad(set_to_none=True)
            _, loss = model(xt, yt)
            loss.backward()
            clip(model.parameters(), 1.0)
            optimizers[name].step()
            return float(loss.detach())
        return step

    return {"numpy": numpy_step,
            "torch built-in": torch_step(builtin, "torch built-in", torch.nn.utils.clip_grad_norm_),
            "torch twin": torch_step(twin, "torch twin", twin_clip)}


def timings_ms(repeat: int) -> dict[str, list[float]]:
    run = steps()
    first = {name: step() for name, step in run.items()}  # warm-up; the same first loss
    assert max(first.values()) - min(first.values()) < 1e-4 * max(first.values()), first
    times: dict[str, list[float]] = {name: [] for name in run}
    for _ in range(repeat):
        for name, step in run.items():
            start = time.perf_counter()
            step()
            times[name].append(1e3 * (time.perf_counter() - start))
    return times


def status_mib(field: str) -> float:
    """VmRSS (resident now) or VmHWM (peak resident) of this process, in MiB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def peak_memory(name: str, threads: int) -> float:
    """The peak-RSS growth of building the model and two steps, in a fresh process."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, __file__, "--memory-of", name, "--threads",
                          str(threads)], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    args = PARSER.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_of:
        Path("/proc/self/clear_refs").write_text("5")  # the peak so far (imports) is forgotten
        before = status_mib("VmRSS")
        step = steps()[args.memory_of]  # builds all three models; this one is stepped
        step()
        step()  # the second step holds the optimizer state as well
        print(f"{status_mib('VmHWM') - before:.1f}")
        return
    print(f"GPT training step (forward, backward, clip, AdamW), float32, n_layer "
          f"{CONFIG['n_layer']}, n_head {CONFIG['n_head']}, n_embd {CONFIG['n_embd']}, "
          f"block_size {CONFIG['block_size']}, batch {BATCH}, vocab {CONFIG['vocab_size']}; "
          f"best and median of {args.repeat} interleaved runs; torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), NumPy {np.__version__} (OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}), {os.cpu_count()} CPUs")
    times = timings_ms(args.repeat)
    print(f"{'statistic':<9} " + " ".join(f"{n + ' ms':>18}" for n in NAMES)
          + f" {'numpy / built-in':>17} {'numpy / twin':>13}")
    for label, statistic in (("best", min), ("median", statistics.median)):
        row = {name: statistic(times[name]) for name in NAMES}
        print(f"{label:<9} " + " ".join(f"{row[n]:>18.1f}" for n in NAMES)
              + f" {row['numpy'] / row['torch built-in']:>16.2f}x"
              + f" {row['numpy'] / row['torch twin']:>12.2f}x")
    memory = {name: peak_memory(name, args.threads) for name in NAMES}
    print("peak memory of two steps (RSS growth, MiB): "
          + ", ".join(f"{name} {value:.0f}" for name, value in memory.items()))


if __name__ == "__main__":
    main()
