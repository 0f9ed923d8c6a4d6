"""The bench machinery: what it times is the right work, every concept gets a plan, the
interleaving, the memory probe, the ratios and the command line. Never a timing assertion."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from compare import registry
from compare.cli.bench import (
    CONTENDERS,
    Timing,
    default_bench,
    geomean,
    interleaved,
    optimizer_work,
    peak_memory,
    plan,
)
from compare.concept import Bench, Case, Trial, randn
from compare.runner import run_module
from numpy_impl.layers import linear as numpy_linear
from numpy_impl.training import optimizers as numpy_optim
from torch_impl.layers import linear as torch_linear
from torch_impl.training import optimizers as torch_optim

ROOT = Path(__file__).resolve().parent.parent
SMALL_LINEAR = Case("small", numpy=numpy_linear.Linear, torch=torch_linear.Linear,
                    builtin=torch.nn.Linear, init=dict(in_features=5, out_features=3),
                    inputs=dict(x=randn(4, 5)))


def test_bench_needs_cases_or_work_but_not_both() -> None:
    with pytest.raises(ValueError, match="either cases or work"):
        Bench("nothing")
    with pytest.raises(ValueError, match="either cases or work"):
        Bench("both", cases=(SMALL_LINEAR,), work=lambda trial: {})


def test_every_concept_has_a_plan_with_known_contenders() -> None:
    for concept in registry.concepts().values():
        spec = concept.bench or default_bench(concept)
        assert spec.size, concept.name
        if concept.bench is None:
            assert spec.size.startswith("default:"), concept.name
        if spec.cases:  # module benchmarks: each case runs the concept's own twins
            assert all(c.numpy is not None and c.torch is not None for c in spec.cases)


def test_every_registered_concept_declares_a_benchmark() -> None:
    undeclared = [c.name for c in registry.concepts().values() if c.bench is None]
    assert not undeclared, f"no Bench declared (timed by a default): {undeclared}"


# Declared steps that take over a second of CPU time on the first call (the torch side's
# first backward included); measured once each in float64 on the project's 2-core machine:
# interpretability 13.9 s, activations 4.4, generalization 3.8, gpt 2.3, micrograd 1.9,
# bpe 1.5, residual 1.4, lstm 1.3, gradient_flow 1.2, losses 1.1, vanishing_gradients 1.1.
# The other 32 concepts take about 10 s together. By default those run in float64; with
# DUALGRAD_BENCH_ALL=1 every concept runs, in both dtypes.
HEAVY_BENCHMARKS = {"interpretability", "activations", "generalization", "gpt", "micrograd",
                    "bpe", "residual", "lstm", "gradient_flow", "losses",
                    "vanishing_gradients"}
ALL_BENCHMARKS = bool(os.environ.get("DUALGRAD_BENCH_ALL"))


def _bench_params() -> list[Any]:
    params = []
    for name in registry.concepts():
        for dtype in ("float64", "float32"):
            run_it = ALL_BENCHMARKS or (dtype == "float64" and name not in HEAVY_BENCHMARKS)
            params.append(pytest.param(name, dtype, id=f"{name}-{dtype}", marks=() if run_it
                                       else pytest.mark.skip(reason="heavy or float32: "
                                                             "DUALGRAD_BENCH_ALL=1 runs it")))
    return params


@pytest.mark.parametrize(("name", "dtype"), _bench_params())
def test_every_declared_benchmark_step_runs_once(name: str, dtype: str) -> None:
    concept = registry.concepts()[name]
    work = plan(concept, dtype)
    assert not work.default and work.size == concept.bench.size
    assert {"numpy", "torch"} <= set(work.steps) <= {"numpy", "torch", "builtin"}
    for side, step in work.steps.items():
        assert step() is not None, f"{name} {side}: a step returns what it computed"


def test_declared_module_benchmark_is_larger_than_every_test_case() -> None:
    concept = registry.concepts()["layernorm"]
    rng = np.random.default_rng(0)
    declared = sum(np.size(d(rng)) for d in concept.bench.cases[0].inputs.values())
    largest = max(sum(np.size(d(rng)) for d in c.inputs.values()) for c in concept.cases)
    assert declared == 4096 * 512 > 100 * largest


def test_module_steps_compute_what_a_comparison_computes() -> None:
    concept = dataclasses.replace(registry.concepts()["linear"],
                                  bench=Bench("small", cases=(SMALL_LINEAR,)))
    work = plan(concept, "float64")
    assert set(work.steps) == {"numpy", "torch", "builtin"} and not work.default
    numpy_result, torch_result, builtin_result = (work.steps[s]() for s in
                                                  ("numpy", "torch", "builtin"))
    outcome = run_module(SMALL_LINEAR, Trial("float64", seed=0))
    np.testing.assert_allclose(numpy_result[0], outcome.torch["out"], rtol=1e-12)
    assert len(numpy_result) == len(torch_result) == len(builtin_result) == 3  # y, dW, db
    for mine, twin, builtin in zip(numpy_result, torch_result, builtin_result, strict=True):
        np.testing.assert_allclose(mine, twin, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(twin, builtin, rtol=1e-12, atol=1e-14)
    again = work.steps["numpy"]()  # zero_grad inside the step: no accumulation over repeats
    np.testing.assert_allclose(again[1], numpy_result[1], rtol=0, atol=0)


def test_optimizer_work_moves_all_contenders_alike() -> None:
    work = optimizer_work([(numpy_optim.Adam, torch_optim.Adam,
                            lambda params, **kw: torch.optim.Adam(params, **kw), dict(lr=0.1)),
                           (numpy_optim.SGD, torch_optim.SGD, None, dict(lr=0.1, momentum=0.9))],
                          [(3, 4), (4,)])(Trial("float64"))
    assert set(work) == {"numpy", "torch"}  # SGD has no built-in here: no built-in row at all
    for _ in range(3):
        results = {side: step() for side, step in work.items()}
    assert len(results["numpy"]) == 4  # two parameters, two optimizers
    for mine, twin in zip(results["numpy"], results["torch"], strict=True):
        np.testing.assert_allclose(mine, twin, rtol=1e-12)
    start = np.random.default_rng(0).standard_normal((3, 4))
    assert np.abs(results["numpy"][0] - start).max() > 0.1  # three steps of lr 0.1 moved it


@pytest.mark.parametrize("name", ["mlp_lm", "autoencoder", "cnn", "bigram"])
def test_declared_training_step_agrees_across_contenders(name: str) -> None:
    work = plan(registry.concepts()[name], "float64")
    assert set(work.steps) == ({"numpy", "torch"} if name == "bigram" else
                               {"numpy", "torch", "builtin"})  # bigram's witness is no module
    first = {side: step() for side, step in work.steps.items()}
    second = {side: step() for side, step in work.steps.items()}
    for results in (first, second):
        assert results["numpy"] == pytest.approx(results["torch"], rel=1e-12)
        assert results["torch"] == pytest.approx(results.get("builtin", results["torch"]),
                                                 rel=1e-12)
    assert second["numpy"] < first["numpy"]  # one SGD step lowered the loss on that batch


def test_concept_with_own_runner_and_no_declaration_is_timed_as_a_whole() -> None:
    # every concept declares its benchmark: the default is seen with the declaration taken away
    concept = dataclasses.replace(registry.concepts()["lr_schedules"], bench=None)
    assert concept.run is not None
    work = plan(concept, "float64")
    assert work.default and set(work.steps) == {"runner"}
    assert "both twins together" in work.size
    outcome = work.steps["runner"]()
    assert set(outcome.numpy) == set(outcome.torch) and outcome.numpy


def test_interleaved_warms_up_then_rotates_the_order() -> None:
    calls: list[str] = []
    steps = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    times = interleaved(steps, repeat=3)
    assert calls == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {name: len(t) for name, t in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_peak_memory_sees_an_allocation() -> None:
    held = []
    peak = peak_memory(lambda: held.append(np.ones(8 * 2**20 // 8 * 4)))  # 32 MiB, touched
    if peak is None:
        pytest.skip("no /proc/self/clear_refs here")
    assert peak >= 30 * 2**20
    assert peak_memory(lambda: None) < 30 * 2**20


def test_ratio_against_builtin_else_twin_and_geomean() -> None:
    both = Timing("x", "float64", "s", False, {"numpy": [2.0, 4.0, 6.0], "torch": [1.0] * 3,
                                               "builtin": [2.0, 2.0, 2.0]})
    assert both.reference == "builtin" and both.ratio("median") == 2.0
    assert both.ratio("min") == 1.0
    twin_only = Timing("x", "float64", "s", False, {"numpy": [3.0], "torch": [1.0]})
    assert twin_only.reference == "torch" and twin_only.ratio() == 3.0
    runner = Timing("x", "float64", "s", True, {"runner": [1.0]})
    assert runner.ratio() is None and runner.to_dict()["ratio_median"] is None
    assert geomean([1.0, 4.0, None]) == pytest.approx(2.0)
    assert geomean([]) is None
    assert set(CONTENDERS) == {"numpy", "torch", "builtin", "runner"}


@pytest.mark.parametrize("threads", [1, 2])
def test_cli_sets_both_libraries_threads_json_and_plot(tmp_path: Path, threads: int) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    plot = tmp_path / "ratios.png"
    done = subprocess.run(
        [sys.executable, "-m", "compare", "bench", "mlp_lm", "--repeat", "1", "--dtype",
         "float32", "--threads", str(threads), "--json", "--plot", str(plot)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=True)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    environment = lines[0]["environment"]
    assert environment["torch_threads"] == threads
    assert environment["blas_threads"] in (threads, None)  # None: a BLAS that does not say
    assert environment["torch_cpu_capability"]
    row = lines[1]
    assert row["concept"] == "mlp_lm" and row["dtype"] == "float32" and not row["default"]
    assert row["numpy_over"] == "builtin" and row["ratio_median"] > 0
    assert set(row["median_ms"]) == set(row["peak_bytes"]) == {"numpy", "torch", "builtin"}
    assert row["runs"] == 1
    assert lines[2]["geomean"] == "float32"
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_referee_runs_the_torch_side_only_and_identically() -> None:
    case = SMALL_LINEAR
    referee = Trial("float64", data_dtype="float32", builtin=False, fd=False)
    full, torch_only = run_module(case, referee), run_module(case, referee, numpy_side=False)
    assert torch_only.numpy == {}
    assert set(full.torch) == set(torch_only.torch)
    for name, value in full.torch.items():
        np.testing.assert_array_equal(torch_only.torch[name], value)


def test_module_comparison_gradients_are_those_of_backward_with_upstream() -> None:
    outcome = run_module(SMALL_LINEAR, Trial("float64", seed=3))
    x = torch.from_numpy(outcome.inputs["x"].copy()).requires_grad_(True)
    state = run_module(SMALL_LINEAR, Trial("float64", seed=3), torch_cls=_Recorder).torch
    assert set(state) == set(outcome.torch)
    _Recorder.last.zero_grad()
    y = _Recorder.last(x)
    y.backward(torch.from_numpy(outcome.upstream["out"]))  # the explicit-upstream way
    np.testing.assert_array_equal(outcome.torch["grad.input.x"], x.grad.numpy())
    for name, param in _Recorder.last.named_parameters():
        np.testing.assert_array_equal(outcome.torch[f"grad.param.{name}"], param.grad.numpy())


class _Recorder(torch_linear.Linear):
    """The torch twin, remembering its last instance (to redo its backward by hand)."""
    last: torch_linear.Linear

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        _Recorder.last = self


def test_a_module_comparison_does_not_import_symbolic_shapes() -> None:
    code = ("import sys, contextlib, io\nfrom compare.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['run', 'layernorm'])\n"
            "print('torch.fx.experimental.symbolic_shapes' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert done.stdout.strip().splitlines()[-1] == "False", done.stderr[-2000:]
