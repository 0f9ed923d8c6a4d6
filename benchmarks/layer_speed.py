"""Speed of the hand-written NumPy layers against the torch built-ins at realistic sizes, one
forward + backward each, both dtypes.

Layers and sizes (issue 18): GELU exact (4096, 1000); Embedding V=10k, D=128, indices
(256, 64); LayerNorm (4096, 512); BatchNorm1d (4096, 512) in training; CrossEntropyLoss
(4096, 1000); Softmax (4096, 1000) over the last dim; Conv2d (32, 16, 28, 28) 3x3 -> 32;
MaxPool2d k2 on (32, 32, 28, 28); Linear (256, 1024) -> 1024. One step is what a training loop
does: zero the parameter gradients (torch: set to None, as ``zero_grad()`` does), forward, and
backward of a random upstream gradient (a scalar for the loss). The two sides must agree
(float64 1e-10, float32 1e-4 normwise) before they are timed: a fast wrong answer is no answer.

Timing: one warm-up step each, then ``--repeat`` rounds in which every contender runs once, in
turn (interleaved, so that load from other processes on a shared machine hits all of them
alike). The table shows the minimum (the least disturbed run) and the median of each, the
ratios NumPy / torch of both statistics, and a geometric mean of the median ratios per dtype.
``--clock cpu`` times with this process's CPU time instead of the wall clock: steadier when
more processes than cores compete for the machine (it then leaves out the time spent waiting
for a core), and the same thing as wall time with one thread.

``--before REF`` also times the NumPy twins as they were at git commit REF (extracted with
``git archive`` and imported under their own ``numpy_impl`` package), interleaved with the
current ones in the same rounds: the before/after ratios of one run on one machine.

Threads: ``--threads N`` (default 1) sets torch's intra-op threads and the BLAS threads of NumPy
(OPENBLAS_NUM_THREADS, OMP_NUM_THREADS and MKL_NUM_THREADS, set before NumPy loads, since a BLAS
reads them once; with threadpoolctl installed, its count in force is printed too). The header
prints the BLAS NumPy was built with, the thread counts, and torch's CPU capability.

Run: ``python benchmarks/layer_speed.py [LAYER ...] [--threads N] [--repeat N] [--dtype D]
[--clock wall|cpu] [--before REF]`` (``--list`` names the layers; ``--erf`` measures the NumPy
erf's accuracy against ``math.erf`` instead).
"""
from __future__ import annotations

import argparse
import os
import sys

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("layers", nargs="*", help="layers to time (default: all); see --list")
PARSER.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (default 1)")
PARSER.add_argument("--repeat", type=int, default=15,
                    help="interleaved timed rounds per layer and dtype (default 15)")
PARSER.add_argument("--dtype", choices=("float32", "float64"), action="append",
                    help="dtype to time (repeatable; default both)")
PARSER.add_argument("--before", metavar="REF",
                    help="also time the NumPy twins of git commit REF, side by side")
PARSER.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="wall: perf_counter (default); cpu: this process's CPU time "
                         "(process_time), steadier on an oversubscribed machine, and equal to "
                         "wall time only with one thread")
PARSER.add_argument("--list", action="store_true", help="list the layers and exit")
PARSER.add_argument("--erf", action="store_true",
                    help="instead of timing: the NumPy erf's worst error against math.erf on a "
                         "dense grid (1.24 million points), float64 and float32")
_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
if __name__ == "__main__":
    # A BLAS reads its thread count once, when NumPy loads it: set it before the import
    for _variable in _THREAD_VARIABLES:
        os.environ[_variable] = str(PARSER.parse_known_args()[0].threads)

import importlib  # noqa: E402
import io  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tarfile  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout

Step = Callable[[], None]


@dataclass(frozen=True)
class Layer:
    """One benchmark: the NumPy class (module path, name), how to build both twins, inputs."""
    name: str
    size: str
    module: str
    cls: str
    build: Callable  # (numpy_cls, dtype, rng) -> (numpy_step, torch_step, outputs), where
    #                   outputs["numpy"] / ["torch"] holds the last step's output and gradients


# --- the layers -------------------------------------------------------------------------------
def _torch(array: np.ndarray, grad: bool = False) -> torch.Tensor:
    tensor = torch.from_numpy(array)
    return tensor.requires_grad_(True) if grad else tensor


def _module_pair(numpy_cls, torch_module: nn.Module, dtype: str, *args, **kwargs):
    """The built-in in ``dtype`` and the NumPy twin with the built-in's weights."""
    torch_module = torch_module.to(getattr(torch, dtype))
    mine = numpy_cls(*args, **kwargs).to(dtype)
    mine.load_state_dict(torch_module.state_dict())
    return mine, torch_module


def _elementwise(make_torch: Callable[[], nn.Module], shape: tuple[int, ...],
                 out_shape: tuple[int, ...] | None = None, **kwargs):
    """A layer y = f(x) without parameters: forward, then backward of a random g."""
    def build(numpy_cls, dtype: str, rng: np.random.Generator):
        x = rng.standard_normal(shape).astype(dtype)
        g = rng.standard_normal(out_shape or shape).astype(dtype)
        mine, builtin = numpy_cls(**kwargs), make_torch()
        xt, gt = _torch(x, grad=True), _torch(g)
        out: dict[str, tuple] = {}

        def numpy_step() -> None:
            y = mine(x)
            out["numpy"] = (y, mine.backward(g))

        def torch_step() -> None:
            xt.grad = None
            y = builtin(xt)
            y.backward(gt)
            out["torch"] = (y.detach().numpy(), xt.grad.numpy())
        return numpy_step, torch_step, out
    return build


def _parametric(make_torch: Callable[[], nn.Module], args: tuple, x_shape: tuple[int, ...],
                y_shape: tuple[int, ...], kwargs: dict | None = None):
    """A layer with parameters: zero_grad, forward, backward; compares y, dx and every grad."""
    def build(numpy_cls, dtype: str, rng: np.random.Generator):
        x = rng.standard_normal(x_shape).astype(dtype)
        g = rng.standard_normal(y_shape).astype(dtype)
        mine, builtin = _module_pair(numpy_cls, make_torch(), dtype, *args, **(kwargs or {}))
        xt, gt = _torch(x, grad=True), _torch(g)
        out: dict[str, tuple] = {}

        def numpy_step() -> None:
            mine.zero_grad()
            y = mine(x)
            dx = mine.backward(g)
            out["numpy"] = (y, dx, *(p.grad for p in mine.parameters()))

        def torch_step() -> None:
            xt.grad = None
            builtin.zero_grad(set_to_none=True)
            y = builtin(xt)
            y.backward(gt)
            out["torch"] = (y.detach().numpy(), xt.grad.numpy(),
                            *(p.grad.numpy() for p in builtin.parameters()))
        return numpy_step, torch_step, out
    return build


def _embedding(numpy_cls, dtype: str, rng: np.random.Generator):
    vocab, dim, idx_shape = 10_000, 128, (256, 64)
    mine, builtin = _module_pair(numpy_cls, nn.Embedding(vocab, dim), dtype, vocab, dim)
    idx = rng.integers(0, vocab, idx_shape)
    g = rng.standard_normal((*idx_shape, dim)).astype(dtype)
    idx_t, gt = _torch(idx), _torch(g)
    out: dict[str, tuple] = {}

    def numpy_step() -> None:
        mine.zero_grad()
        y = mine(idx)
        mine.backward(g)
        out["numpy"] = (y, mine.weight.grad)

    def torch_step() -> None:
        builtin.zero_grad(set_to_none=True)
        y = builtin(idx_t)
        y.backward(gt)
        out["torch"] = (y.detach().numpy(), builtin.weight.grad.numpy())
    return numpy_step, torch_step, out


def _cross_entropy(numpy_cls, dtype: str, rng: np.random.Generator):
    shape = (4096, 1000)
    x = rng.standard_normal(shape).astype(dtype)
    target = rng.integers(0, shape[1], shape[0])
    g = np.array(rng.standard_normal(), dtype=dtype)  # dL/dloss: a random scalar
    mine, builtin = numpy_cls(), nn.CrossEntropyLoss()
    xt, tt, gt = _torch(x, grad=True), _torch(target), _torch(g)
    out: dict[str, tuple] = {}

    def numpy_step() -> None:
        loss = mine(x, target)
        out["numpy"] = (np.asarray(loss), mine.backward(g))

    def torch_step() -> None:
        xt.grad = None
        loss = builtin(xt, tt)
        loss.backward(gt)
        out["torch"] = (loss.detach().numpy(), xt.grad.numpy())
    return numpy_step, torch_step, out


LAYERS = {layer.name: layer for layer in (
    Layer("gelu", "GELU exact (4096, 1000)", "numpy_impl.layers.activations", "GELU",
          _elementwise(nn.GELU, (4096, 1000))),
    Layer("embedding", "Embedding V=10k D=128 idx (256, 64)", "numpy_impl.layers.embedding",
          "Embedding", _embedding),
    Layer("layernorm", "LayerNorm (4096, 512)", "numpy_impl.layers.layernorm", "LayerNorm",
          _parametric(lambda: nn.LayerNorm(512), (512,), (4096, 512), (4096, 512))),
    Layer("batchnorm", "BatchNorm1d (4096, 512)", "numpy_impl.layers.batchnorm", "BatchNorm1d",
          _parametric(lambda: nn.BatchNorm1d(512), (512,), (4096, 512), (4096, 512))),
    Layer("cross_entropy", "CrossEntropy (4096, 1000)", "numpy_impl.layers.losses",
          "CrossEntropyLoss", _cross_entropy),
    Layer("softmax", "Softmax (4096, 1000)", "numpy_impl.layers.activations", "Softmax",
          _elementwise(lambda: nn.Softmax(dim=-1), (4096, 1000), dim=-1)),
    Layer("conv2d", "Conv2d (32,16,28,28) 3x3->32", "numpy_impl.vision.conv2d", "Conv2d",
          _parametric(lambda: nn.Conv2d(16, 32, 3), (16, 32, 3), (32, 16, 28, 28),
                      (32, 32, 26, 26))),
    Layer("maxpool2d", "MaxPool2d k2 (32,32,28,28)", "numpy_impl.vision.pooling", "MaxPool2d",
          _elementwise(lambda: nn.MaxPool2d(2), (32, 32, 28, 28), (32, 32, 14, 14),
                       kernel_size=2)),
    Layer("linear", "Linear b256 1024->1024", "numpy_impl.layers.linear", "Linear",
          _parametric(lambda: nn.Linear(1024, 1024), (1024, 1024), (256, 1024), (256, 1024))),
)}



# --- loading the NumPy twins (the current ones, and those of an older commit) -----------------
def _purge_numpy_impl() -> dict[str, object]:
    """Remove ``numpy_impl`` and its submodules from ``sys.modules``; returns what was there."""
    names = [n for n in sys.modules if n == "numpy_impl" or n.startswith("numpy_impl.")]
    return {name: sys.modules.pop(name) for name in names}


def load_classes(root: Path, layers: list[Layer]) -> dict[str, type]:
    """Each layer's NumPy class as the ``numpy_impl`` package under ``root`` defines it. Two
    versions coexist: each class keeps the module globals it was defined with."""
    saved = _purge_numpy_impl()
    sys.path.insert(0, str(root))
    try:
        return {layer.name: getattr(importlib.import_module(layer.module), layer.cls)
                for layer in layers}
    finally:
        sys.path.remove(str(root))
        _purge_numpy_impl()
        sys.modules.update(saved)


def extract_commit(ref: str, into: Path) -> Path:
    """``numpy_impl`` as it was at git commit ``ref``, unpacked under ``into``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref,
                              "numpy_impl"], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")  # our own repository's files: no link tricks
    return into


# --- measuring --------------------------------------------------------------------------------
def normwise_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    return float(np.abs(ours - theirs).max() / max(np.abs(theirs).max(), 1e-300))


def check_agreement(name: str, label: str, ours: tuple, theirs: tuple, dtype: str) -> float:
    """The worst normwise error over the output and every gradient; raises beyond the bound."""
    worst = max(normwise_error(a, b) for a, b in zip(ours, theirs, strict=True))
    bound = 1e-10 if dtype == "float64" else 1e-4
    if not worst <= bound:
        raise SystemExit(f"{name} {dtype}: {label} and torch disagree (normwise {worst:.1e} > "
                         f"{bound:.0e}); not timing")
    return worst


def timings_ms(steps: dict[str, Step], repeat: int,
               clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Each step ``repeat`` times, interleaved (a, b, c, a, b, c, ...), after a warm-up."""
    for step in steps.values():
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            start = clock()
            step()
            times[name].append(1e3 * (clock() - start))
    return times


def measure(layer: Layer, dtype: str, classes: dict[str, type], repeat: int,
            clock: Callable[[], float] = time.perf_counter):
    """Times (ms) per contender, and the worst normwise error of each NumPy twin vs torch."""
    steps: dict[str, Step] = {}
    errors: dict[str, float] = {}
    torch_step: Step | None = None
    for label, numpy_cls in classes.items():
        rng = np.random.default_rng(0)
        torch.manual_seed(0)
        numpy_step, torch_step_here, out = layer.build(numpy_cls, dtype, rng)
        numpy_step()
        torch_step_here()
        errors[label] = check_agreement(layer.name, label, out["numpy"], out["torch"], dtype)
        steps[label] = numpy_step
        torch_step = torch_step if torch_step is not None else torch_step_here
    steps["torch"] = torch_step
    return timings_ms(steps, repeat, clock), errors


# --- erf's accuracy ----------------------------------------------------------------------------
def erf_accuracy() -> None:
    """The worst error of ``numpy_impl``'s erf against ``math.erf`` (correctly rounded to
    float64 for practical purposes) on 1M points evenly over [-8, 8], 200k log-spaced over
    ±[1e-300, 1e-2] and 40k around Cody's split 0.46875 and the cut-off 6; in ulps of the
    exact value, and relative."""
    import math
    erf = importlib.import_module("numpy_impl.layers.activations").erf
    tiny = np.geomspace(1e-300, 1e-2, 100_000)
    x = np.concatenate([np.linspace(-8.0, 8.0, 1_000_001), tiny, -tiny,
                        np.linspace(0.4, 0.5, 20_001), np.linspace(3.9, 6.1, 20_001)])
    for dtype in (np.float64, np.float32):
        points = x.astype(dtype)
        exact = np.array([math.erf(float(v)) for v in points])
        got = erf(points).astype(np.float64)
        # float32: subnormal results have fewer digits; judged by absolute error below
        normal = np.abs(exact) >= np.finfo(dtype).tiny
        ulp = np.spacing(np.abs(exact[normal]).astype(dtype)).astype(np.float64)
        error = np.abs(got[normal] - exact[normal])
        worst = int(np.argmax(error / ulp))
        print(f"{np.dtype(dtype).name}: {points.size} points, worst "
              f"{error[worst] / ulp[worst]:.2f} ulp at x = {float(points[normal][worst]):.6g}; "
              f"worst relative error "
              f"{np.max(error / np.abs(exact[normal])):.2e}; subnormal results: worst absolute "
              f"error {np.max(np.abs(got[~normal] - exact[~normal]), initial=0.0):.1e}")


# --- reporting --------------------------------------------------------------------------------
def blas_in_use() -> str:
    """The BLAS NumPy was built against (and, with threadpoolctl, what is loaded and its
    threads)."""
    try:
        config = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        text = f"{config.get('name', '?')} {config.get('version', '')}".strip()
    except (TypeError, KeyError):
        text = "unknown"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return text + " (threadpoolctl not installed: threads from the environment variables)"
    pools = [f"{p['internal_api']} {p.get('version', '')} {p['num_threads']} threads"
             for p in threadpool_info() if p["user_api"] == "blas"]
    return text + (" -- loaded: " + "; ".join(pools) if pools else "")


def header(threads: int, repeat: int, clock: str) -> str:
    variables = ", ".join(f"{v}={os.environ.get(v, 'unset')}" for v in _THREAD_VARIABLES)
    return (f"forward + backward per step, {clock} clock, min and median of {repeat} "
            f"interleaved rounds (after a warm-up), --threads {threads}\n"
            f"NumPy {np.__version__}, BLAS {blas_in_use()}; {variables}\n"
            f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads, "
            f"CPU capability {torch.backends.cpu.get_cpu_capability()}")


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


def main(argv: list[str] | None = None) -> None:
    args = PARSER.parse_args(argv)
    if args.erf:
        erf_accuracy()
        return
    if args.list:
        for layer in LAYERS.values():
            print(f"{layer.name:<14} {layer.size}")
        return
    unknown = [name for name in args.layers if name not in LAYERS]
    if unknown:
        PARSER.error(f"unknown layer(s) {', '.join(unknown)}; one of {', '.join(LAYERS)}")
    torch.set_num_threads(args.threads)
    layers = [LAYERS[name] for name in args.layers] or list(LAYERS.values())
    dtypes = args.dtype or ["float32", "float64"]
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    with tempfile.TemporaryDirectory() as tmp:
        contenders = {"numpy": load_classes(ROOT, layers)}
        if args.before:
            contenders["before"] = load_classes(extract_commit(args.before, Path(tmp)), layers)
        print(header(args.threads, args.repeat, args.clock))
        title = (f"{'layer':<37} {'dtype':<8} {'torch ms min/med':>17} {'numpy ms min/med':>17} "
                 f"{'numpy/torch min/med':>19}")
        if args.before:
            title += (f" {'before ms min/med':>17} {'before/torch':>19} "
                      f"{'speed-up med':>12}")
        print(title + f" {'worst err':>9}")
        ratios: dict[str, dict[str, list[float]]] = {d: {c: [] for c in contenders} for d in dtypes}
        for layer in layers:
            for dtype in dtypes:
                classes = {label: found[layer.name] for label, found in contenders.items()}
                times, errors = measure(layer, dtype, classes, args.repeat, clock)
                lo = {k: min(v) for k, v in times.items()}
                med = {k: statistics.median(v) for k, v in times.items()}
                row = f"{layer.size:<37} {dtype:<8} {lo['torch']:>8.2f}/{med['torch']:<8.2f}"
                for label in contenders:
                    ratios[dtype][label].append(med[label] / med["torch"])
                    row += (f" {lo[label]:>8.2f}/{med[label]:<8.2f}"
                            f" {_ratio(lo[label] / lo['torch']):>9}/"
                            f"{_ratio(med[label] / med['torch']):<9}")
                if args.before:
                    row += f" {_ratio(med['before'] / med['numpy']):>12}"
                print(row + f" {max(errors.values()):>9.1e}", flush=True)
        for dtype in dtypes:
            line = ", ".join(f"{label} {_ratio(statistics.geometric_mean(values))}"
                             for label, values in ratios[dtype].items())
            print(f"geometric mean of the median ratios to torch, {dtype}: {line}")


if __name__ == "__main__":
    main()
