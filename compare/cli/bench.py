"""``dualgrad bench``: how fast each twin runs its concept at a size representative of its use.

Each concept declares its benchmark (``Concept.bench``, a ``compare.concept.Bench``): for a module
concept, cases at benchmark size (LayerNorm (4096, 512), Conv2d (32, 16, 28, 28) -> 32, ...),
each timed as one forward + backward; for a concept with its own runner, the work itself (an
optimizer step over a realistic parameter set, one training step, one BPE training run). A
concept without a declaration gets a default, marked as such in every output: a module concept
its largest case; a concept with its own runner one run of its largest case (both twins
together, since its runner does not separate them: no ratio then).

Contenders: the NumPy twin, the torch twin and the torch built-in where one exists. Timing: one
warm-up step each, then ``repeat`` rounds in which every contender runs once, the order rotating
from round to round (interleaved, so that load from other processes on a shared machine hits
every contender alike); the minimum (the least disturbed run) and the median are kept. The
clock is the wall clock (``perf_counter``) or this process's CPU time (``process_time``:
steadier on an oversubscribed machine, and the same thing as wall time with one thread).

Peak memory: the extra resident memory at the peak of one warmed-up step, the same way for NumPy
and torch: freed heap pages are first handed back to the system (``malloc_trim``), the
process's high-water mark is reset to its resident size (``/proc/self/clear_refs``, Linux), and
after the step the high-water mark minus that size is the peak.

Threads: ``--threads N`` sets torch's intra-op threads and the BLAS threads of NumPy; a BLAS reads
``OPENBLAS_NUM_THREADS`` once, when NumPy loads, so the count is set through the library's own
``openblas_set_num_threads`` (as threadpoolctl does). The header states what is in force: the
BLAS NumPy was built with and its thread count as that library reports it, torch's threads and
its CPU capability (the vector instructions its kernels were dispatched to).

Garbage collection: paused during a timed step and run between steps, as ``timeit`` does.

Timings on a shared machine are noisy: this is a benchmark to read, never a test to pass.
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import math
import os
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compare.concept import Bench, Case, Concept, Trial, Work
from compare.runner import flatten, initial_state, numpy_twin, torch_module, unflatten

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
CONTENDERS = ("numpy", "torch", "builtin", "runner")
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


# --- threads and libraries in force ---------------------------------------------------------
def set_threads(threads: int) -> int | None:
    """Set torch's intra-op threads and NumPy's BLAS threads to ``threads``; returns the BLAS
    count now in force as the library reports it (None: a BLAS this cannot reach). The BLAS is
    set through its own ``openblas_set_num_threads`` (as threadpoolctl does), since it read
    ``OPENBLAS_NUM_THREADS`` once, when NumPy loaded; the variables are set too, for child
    processes."""
    import torch
    torch.set_num_threads(threads)
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    library = _loaded_blas()
    for prefix in ("scipy_openblas", "openblas"):
        for suffix in ("64_", ""):
            setter = f"{prefix}_set_num_threads{suffix}"
            if library is not None and hasattr(library, setter):
                getattr(library, setter)(ctypes.c_int(threads))
                return blas_threads()
    return blas_threads()


def blas_threads() -> int | None:
    """The BLAS thread count in force, as the OpenBLAS NumPy loaded reports it."""
    library = _loaded_blas()
    for prefix in ("scipy_openblas", "openblas"):
        for suffix in ("64_", ""):
            getter = f"{prefix}_get_num_threads{suffix}"
            if library is not None and hasattr(library, getter):
                return int(getattr(library, getter)())
    return None


def _loaded_blas() -> ctypes.CDLL | None:
    """The OpenBLAS shared library NumPy loaded, found in this process's memory map."""
    try:
        maps = Path("/proc/self/maps").read_text().splitlines()
    except OSError:
        return None
    paths = {line.split()[-1] for line in maps if "openblas" in line.lower() and "/" in line}
    for path in sorted(paths):
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def environment(threads_requested: int | None = None, clock: str = "wall") -> dict[str, Any]:
    """What ran: the BLAS, its threads as the library reports them, torch's threads and CPU
    capability, the versions, the clock."""
    import torch
    blas_name = "unknown"
    try:
        config = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        blas_name = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # noqa: BLE001 -- an older NumPy: the name stays "unknown"
        pass
    return {"numpy": np.__version__, "torch": torch.__version__, "blas": blas_name,
            "blas_threads": blas_threads(), "torch_threads": torch.get_num_threads(),
            "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads_requested": threads_requested, "clock": clock,
            "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


# --- what is timed ----------------------------------------------------------------------------
@dataclass
class Plan:
    """The steps of one concept in one dtype, and what they stand for."""
    concept: str
    size: str
    steps: dict[str, Work]
    default: bool = False  # no declaration: derived from the concept's cases


def _elements(case: Case) -> int:
    rng = np.random.default_rng(0)
    return sum(np.size(draw(rng)) for draw in case.inputs.values())


def default_bench(concept: Concept) -> Bench:
    """The benchmark of a concept that declares none: its largest case (by input elements)."""
    sizes = [_elements(case) for case in concept.cases]
    largest = concept.cases[sizes.index(max(sizes))]
    which = f"largest case {largest.name!r}" if max(sizes) else f"first case {largest.name!r}"
    if concept.run is None:
        return Bench(f"default: {which}", cases=(largest,))
    return Bench(f"default: one run of the {which} (both twins together, no ratio)",
                 work=lambda trial: {"runner": _runner_step(concept, largest, trial)})


def _runner_step(concept: Concept, case: Case, trial: Trial) -> Work:
    quiet = dataclasses.replace(trial, builtin=False, fd=False)
    return lambda: concept.run(case, quiet)


def module_steps(case: Case, trial: Trial) -> dict[str, Work]:
    """One zero_grad + forward + backward of each contender, on a comparison's data."""
    import torch
    rng = trial.rng()
    state = initial_state(case, trial, rng)
    inputs = {name: trial.cast(draw(rng)) for name, draw in case.inputs.items()}

    def torch_contender(cls: Any) -> tuple[Work, Any]:
        module = torch_module(cls, case, state, trial)
        leaves = [torch.from_numpy(np.array(x)).requires_grad_(np.issubdtype(x.dtype, np.floating))
                  for x in inputs.values()]
        return module, leaves

    twin, leaves = torch_contender(case.torch)
    structure = twin(*leaves)
    upstream = {name: trial.cast(rng.standard_normal(tuple(t.shape)))
                for name, t in flatten(structure) if t.is_floating_point() and t.requires_grad}
    grads = {name: torch.from_numpy(g) for name, g in upstream.items()}

    def torch_step(module: Any, leaves: list[Any]) -> Work:
        def step() -> list[np.ndarray]:
            for leaf in leaves:
                leaf.grad = None
            module.zero_grad(set_to_none=True)
            outputs = flatten(module(*leaves))
            pairs = [(t, grads[n]) for n, t in outputs if n in grads]
            if pairs:
                torch.autograd.backward([t for t, _ in pairs], [g for _, g in pairs])
            return [t.detach().numpy() for _, t in outputs] + [
                p.grad.numpy() for p in module.parameters() if p.grad is not None]
        return step

    mine = numpy_twin(case, state, trial)
    grad_output = unflatten(structure, upstream)

    def numpy_step() -> list[np.ndarray]:
        mine.zero_grad()
        outputs = flatten(mine(*inputs.values()))
        mine.backward(grad_output)
        return [np.asarray(y) for _, y in outputs] + [p.grad for p in mine.parameters()]

    steps = {"numpy": numpy_step, "torch": torch_step(twin, leaves)}
    if case.builtin is not None:
        steps["builtin"] = torch_step(*torch_contender(case.builtin))
    return steps


def plan(concept: Concept, dtype: str) -> Plan:
    """The steps ``dualgrad bench`` times for ``concept`` in ``dtype``."""
    declared = concept.bench
    spec = declared or default_bench(concept)
    trial = Trial(dtype=dtype, seed=0)
    if spec.work is not None:
        steps = dict(spec.work(trial))
    else:
        per_case = [module_steps(case, trial) for case in spec.cases]
        steps = {side: _chain([s[side] for s in per_case])
                 for side in per_case[0] if all(side in s for s in per_case)}
    unknown = set(steps) - set(CONTENDERS)
    if unknown or not steps:
        raise ValueError(f"{concept.name}: benchmark steps must be among {CONTENDERS}, "
                         f"got {sorted(steps)}")
    return Plan(concept.name, spec.size, steps, default=declared is None)


def _chain(steps: list[Work]) -> Work:
    """One step doing ``steps`` in turn; it returns their results, one after another."""
    if len(steps) == 1:
        return steps[0]
    return lambda: [result for step in steps for result in _results(step())]


def _results(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


# --- declarations for concepts with their own runner -------------------------------------------
Optimizer = tuple[Any, Any, Any, dict[str, Any]]  # (NumPy class, torch twin, torch.optim, options)


def optimizer_work(optimizers: Sequence[Optimizer],
                   shapes: Sequence[tuple[int, ...]]) -> Callable[[Trial], dict[str, Work]]:
    """A ``Bench.work``: one ``step()`` of each optimizer over parameters of ``shapes`` (a
    realistic parameter set), the gradients fixed random arrays set before each step, as a
    training loop's backward leaves them. Several optimizers: their steps one after another."""
    def work(trial: Trial) -> dict[str, Work]:
        import torch

        from numpy_impl import Parameter
        rng = trial.rng()
        data = [trial.cast(rng.standard_normal(shape)) for shape in shapes]
        grads = [trial.cast(rng.standard_normal(shape)) for shape in shapes]
        sides: dict[str, list[Work]] = {"numpy": [], "torch": [], "builtin": []}
        for numpy_cls, torch_cls, builtin, options in optimizers:
            params = [Parameter(x.copy()) for x in data]
            sides["numpy"].append(_numpy_optimizer_step(numpy_cls(params, **options), params,
                                                        grads))
            for side, cls in (("torch", torch_cls), ("builtin", builtin)):
                if cls is None:  # no built-in for this one: the concept gets no built-in row
                    sides[side].append(None)
                    continue
                leaves = [torch.tensor(x, requires_grad=True) for x in data]
                sides[side].append(_torch_optimizer_step(cls(leaves, **options), leaves,
                                                         [torch.from_numpy(g) for g in grads]))
        return {side: _chain(steps) for side, steps in sides.items()
                if steps and all(step is not None for step in steps)}
    return work


def _numpy_optimizer_step(optimizer: Any, params: list[Any], grads: list[np.ndarray]) -> Work:
    def step() -> list[np.ndarray]:
        for param, grad in zip(params, grads, strict=True):
            param.grad = grad
        optimizer.step()
        return [param.data for param in params]
    return step


def _torch_optimizer_step(optimizer: Any, leaves: list[Any], grads: list[Any]) -> Work:
    def step() -> list[np.ndarray]:
        for leaf, grad in zip(leaves, grads, strict=True):
            leaf.grad = grad
        optimizer.step()
        return [leaf.detach().numpy() for leaf in leaves]
    return step


Trainer = tuple[Any, Any, Any, Callable[..., Any]]  # (model class, loss class, optimizer, step)


def train_step_work(numpy: Trainer, torch_side: Trainer, builtin: Trainer | None,
                    init: dict[str, Any], x: Callable[[np.random.Generator], np.ndarray],
                    y: Callable[[np.random.Generator], np.ndarray] | None,
                    optimizer_options: dict[str, Any]) -> Callable[[Trial], dict[str, Work]]:
    """A ``Bench.work``: one training step (zero_grad, forward, loss, backward, update) of each
    contender on one batch. Each side is (model class, loss class or None, optimizer class,
    ``step(model, loss_fn, optimizer, x, y)``); the models start from the torch twin's
    weights, so the three train the same network on the same batch. ``y`` None: no targets
    (an autoencoder), the step gets None for them."""
    def work(trial: Trial) -> dict[str, Work]:
        import torch
        rng = trial.rng()
        torch.manual_seed(trial.seed)
        reference = torch_side[0](**init).to(trial.torch_dtype)
        state = {k: v.detach().numpy().copy() for k, v in reference.state_dict().items()}
        xs = trial.cast(x(rng))
        ys = None if y is None else trial.cast(y(rng))
        model = numpy[0](**init).to(trial.np_dtype)
        model.load_state_dict(state)
        steps = {"numpy": _train_step(numpy, model, xs, ys, optimizer_options)}
        for side, spec in (("torch", torch_side), ("builtin", builtin)):
            if spec is None:
                continue
            model = spec[0](**init).to(trial.torch_dtype)
            model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()})
            steps[side] = _train_step(spec, model, torch.from_numpy(xs),
                                      None if ys is None else torch.from_numpy(ys),
                                      optimizer_options)
        return steps
    return work


def numpy_loss_model_step(model: Any, loss_fn: Any, optimizer: Any, x: np.ndarray,
                          y: np.ndarray | None) -> float:
    """A NumPy training step for a model whose forward returns its loss (``model(x)`` or
    ``model(x, y)``): zero_grad, forward, backward from dL/dL = 1, update; the loss."""
    optimizer.zero_grad()
    loss = model(x) if y is None else model(x, y)                      # ()
    model.backward(np.ones((), dtype=np.asarray(loss).dtype))
    optimizer.step()
    return float(loss)


def torch_loss_model_step(model: Any, loss_fn: Any, optimizer: Any, x: Any, y: Any) -> float:
    """The same step in torch: zero_grad, loss = model(x[, y]), autograd's backward, update."""
    optimizer.zero_grad()
    loss = model(x) if y is None else model(x, y)
    loss.backward()
    optimizer.step()
    return loss.item()


def torch_optimizer(name: str) -> Callable[..., Any]:
    """``torch.optim.<name>`` as a factory, for a concept file that imports torch lazily."""
    def make(params: Any, **options: Any) -> Any:
        import torch
        return getattr(torch.optim, name)(params, **options)
    return make


def _train_step(spec: Trainer, model: Any, x: Any, y: Any, options: dict[str, Any]) -> Work:
    _, loss_cls, optimizer_cls, step = spec
    loss_fn = loss_cls() if loss_cls is not None else None
    optimizer = optimizer_cls(list(model.parameters()), **options)
    return lambda: step(model, loss_fn, optimizer, x, y)


# --- timing -------------------------------------------------------------------------------------
def interleaved(steps: dict[str, Work], repeat: int,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, list[float]]:
    """Seconds per run of each step: one warm-up each, then ``repeat`` rounds in which every
    step runs once, the starting contender rotating from round to round.

    As ``timeit`` does, Python's cyclic garbage collector is paused while a step runs (and
    collects, untimed, between steps): otherwise a step that builds many Python objects (micrograd's
    graph of 60,000 scalar nodes) pays for full passes over every object of the process,
    torch's modules included (0.9 of 1.0 s per micrograd step), a cost of the interpreter's
    heuristics rather than of the twin."""
    names = list(steps)
    for name in names:
        steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    enabled = gc.isenabled()
    gc.disable()
    try:
        for round_ in range(repeat):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                gc.collect(0)  # untimed: the cycles the last step left (all in generation 0)
                start = clock()
                steps[name]()
                times[name].append(clock() - start)
    finally:
        if enabled:
            gc.enable()
    return times


def _status_bytes(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise OSError(f"/proc/self/status has no {field_name}")


def peak_memory(step: Work) -> int | None:
    """Extra resident bytes at the peak of one (warmed-up) ``step``; None where that cannot
    be measured (Linux only: it resets the high-water mark through /proc/self/clear_refs)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed heap pages back, so the step reuses none
        Path("/proc/self/clear_refs").write_text("5")  # high-water mark := resident size now
        start = _status_bytes("VmRSS")
        step()
        return max(0, _status_bytes("VmHWM") - start)
    except (OSError, AttributeError):
        return None


@dataclass
class Timing:
    """One concept in one dtype: seconds per run of each contender, and its peak memory."""
    concept: str
    dtype: str
    size: str
    default: bool
    seconds: dict[str, list[float]]
    peak_bytes: dict[str, int | None] = field(default_factory=dict)

    def min_ms(self, side: str) -> float:
        return 1e3 * min(self.seconds[side])

    def median_ms(self, side: str) -> float:
        return 1e3 * statistics.median(self.seconds[side])

    @property
    def reference(self) -> str | None:
        """The torch contender the NumPy twin is measured against: the built-in, else the twin."""
        if "numpy" not in self.seconds:
            return None
        return "builtin" if "builtin" in self.seconds else (
            "torch" if "torch" in self.seconds else None)

    def ratio(self, statistic: str = "median") -> float | None:
        """NumPy twin / torch built-in (or torch twin where no built-in exists)."""
        if self.reference is None:
            return None
        value = self.median_ms if statistic == "median" else self.min_ms
        return value("numpy") / value(self.reference)

    def to_dict(self) -> dict[str, Any]:
        return {"concept": self.concept, "dtype": self.dtype, "size": self.size,
                "default": self.default,
                "min_ms": {s: self.min_ms(s) for s in self.seconds},
                "median_ms": {s: self.median_ms(s) for s in self.seconds},
                "runs": len(next(iter(self.seconds.values()))),
                "numpy_over": self.reference, "ratio_median": self.ratio("median"),
                "ratio_min": self.ratio("min"), "peak_bytes": self.peak_bytes}


def bench(concept: Concept, dtype: str = "float64", repeat: int = 10, clock: str = "wall",
          memory: bool = True) -> Timing:
    """Time every contender of ``concept`` at its declared size (see the module docstring)."""
    work = plan(concept, dtype)
    seconds = interleaved(work.steps, repeat, CLOCKS[clock])
    peaks = {side: peak_memory(step) for side, step in work.steps.items()} if memory else {}
    return Timing(concept.name, dtype, work.size, work.default, seconds, peaks)


def geomean(values: Sequence[float]) -> float | None:
    values = [v for v in values if v is not None and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else None


# --- output -------------------------------------------------------------------------------------
def _ms(value: float) -> str:
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.1f}"


def header(env: dict[str, Any]) -> str:
    return (f"# {env['date']}; numpy {env['numpy']} ({env['blas']}, {env['blas_threads']} "
            f"BLAS threads in force), torch {env['torch']} ({env['torch_threads']} threads, CPU "
            f"capability {env['torch_cpu_capability']}), {env['cpus']} CPUs, clock {env['clock']}")


def table_row(t: Timing) -> str:
    """concept dtype | numpy / torch / builtin: min and median ms | ratio | peak MiB | size."""
    cells = []
    for side in CONTENDERS:
        if side in t.seconds:
            cells.append(f"{side} {_ms(t.min_ms(side))}/{_ms(t.median_ms(side))}")
    ratio = t.ratio("median")
    ratio_text = f"{ratio:6.2f}x vs {t.reference}" if ratio is not None else "   n/a"
    memory = " ".join(f"{side} {_mib(b)}" for side, b in t.peak_bytes.items())
    mark = " [default]" if t.default else ""
    return (f"{t.concept:<22} {t.dtype:<7} {ratio_text:<18} ms min/median: {', '.join(cells)}"
            f"; peak MiB: {memory or '-'}; size {t.size}{mark}")


def geomean_line(timings: Sequence[Timing], dtype: str) -> str:
    ratios = [t.ratio("median") for t in timings if t.dtype == dtype]
    counted = [r for r in ratios if r is not None]
    value = geomean(counted)
    shown = "n/a" if value is None else f"{value:.2f}x"
    return (f"geomean {dtype}: NumPy twin / torch built-in (torch twin where none) {shown} "
            f"over {len(counted)} concepts (median ratios; {len(ratios) - len(counted)} "
            f"without a ratio)")


def plot(timings: Sequence[Timing], path: Path) -> Path:
    """A bar chart of the median ratios per concept and dtype, on a log scale (concepts timed
    without a ratio, a runner as a whole, are left out)."""
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    concepts = list(dict.fromkeys(t.concept for t in timings if t.ratio() is not None))
    dtypes = list(dict.fromkeys(t.dtype for t in timings))
    width = 0.8 / max(1, len(dtypes))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(concepts) + 2), 4.5))
    for k, dtype in enumerate(dtypes):
        ratios = {t.concept: t.ratio("median") for t in timings if t.dtype == dtype}
        xs = [i + (k - (len(dtypes) - 1) / 2) * width for i, c in enumerate(concepts)
              if ratios.get(c)]
        ys = [ratios[c] for c in concepts if ratios.get(c)]
        ax.bar(xs, ys, width, label=dtype)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_yscale("log")
    times = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}x")
    ax.yaxis.set_major_formatter(times)
    ax.yaxis.set_minor_formatter(times)
    ax.set_xticks(range(len(concepts)))
    ax.set_xticklabels(concepts, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("NumPy twin / torch built-in\n(or torch twin), median")
    ax.set_title("dualgrad bench: below 1, the NumPy twin is faster")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
