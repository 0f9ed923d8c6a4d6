"""``dualgrad report DIR``: build the static site -- an index and one page per concept.

Each concept is run (every case, both dtypes, every check), its figures are drawn (the report's
figure and the concept's own, e.g. training curves), and its page is written; then the index.
Everything is plain HTML and PNG with relative links and inlined CSS: the folder works from
``file://`` with no server and no network, and still works when copied elsewhere.

The builder writes only into a folder that is empty, new, or made by an earlier build (it
holds the marker file ``MARKER``), so a user's own ``index.html`` is never overwritten.
Concepts are independent, so ``jobs > 1`` builds them in worker processes.
"""
from __future__ import annotations

import datetime
import os
import sys
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

MARKER = ".dualgrad-report"


class SiteError(Exception):
    """The site cannot be written where asked (one line for the user)."""


def versions() -> dict[str, str]:
    import numpy
    import torch
    try:
        from importlib.metadata import version
        library = version("dualgrad")
    except Exception:  # running from a checkout that is not installed
        library = "unknown"
    return {"dualgrad": library, "numpy": numpy.__version__,
            "torch": torch.__version__.split("+")[0]}


def prepare_directory(directory: Path) -> None:
    """Create ``directory`` or accept it when empty or made by dualgrad; write the marker.
    Raises ``SiteError`` with one line otherwise or when it cannot be written."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise SiteError(f"'{directory}' exists and is not a directory")
    if directory.is_dir():
        try:
            entries = [p.name for p in directory.iterdir()]
        except OSError as error:
            raise SiteError(f"cannot read '{directory}': {error.strerror or error}") from None
        if entries and MARKER not in entries:
            raise SiteError(f"'{directory}' is not empty and was not made by 'dualgrad report' "
                            "(no {MARKER} file); choose a new or empty directory".replace(
                                "{MARKER}", MARKER))
    try:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / MARKER).write_text("made by 'dualgrad report'; it may overwrite this "
                                        "folder's files\n", encoding="utf-8")
    except OSError as error:
        raise SiteError(f"cannot write to '{directory}': {error.strerror or error}") from None


def page_name(concept: Any) -> str:
    return f"{concept.name}.html"


def _relative_url(path: Path, directory: Path) -> str:
    try:
        relative = Path(path).resolve().relative_to(Path(directory).resolve())
    except ValueError:  # a figure written elsewhere: refer to it by name next to the page
        relative = Path(Path(path).name)
    return urllib.parse.quote(relative.as_posix())


def build_page(concept: Any, directory: Path, seed: int, run: Callable[..., Any] | None = None,
               ) -> dict[str, Any]:
    """Run one concept, draw its figures, write its page; return its index entry."""
    from compare.site.align import align_files, module_docstring
    from compare.site.html import concept_page, index_entry
    if run is None:
        from compare.runner import run_concept as run
    started, cpu = time.perf_counter(), time.process_time()
    report = run(concept, seed=seed)
    cpu_run = time.process_time() - cpu
    figures: list[Path] = []
    if report.diffs:
        figures.append(report.plot(directory / f"{concept.name}.png"))
    problem = ""
    if concept.extra_plots is not None:
        try:
            figures.extend(Path(p) for p in concept.extra_plots(directory, seed))
        except Exception as error:  # the page still shows the comparison, and says so
            problem = f"the concept's own figures could not be drawn: " \
                      f"{type(error).__name__}: {error}"
    cpu_plots = time.process_time() - cpu - cpu_run
    numpy_path, torch_path = concept.source_path("numpy_impl"), concept.source_path("torch_impl")
    root = numpy_path.parent.parent.parent
    numpy_source = numpy_path.read_text(encoding="utf-8")
    page = concept_page(
        concept, report, align_files(numpy_path, torch_path),
        math_text=module_docstring(numpy_source),
        titles=(numpy_path.relative_to(root).as_posix(), torch_path.relative_to(root).as_posix()),
        figures=[(_relative_url(p, directory), p.stem.replace("_", " ")) for p in figures],
        versions=versions(), problem=problem)
    (directory / page_name(concept)).write_text(page, encoding="utf-8")
    entry = index_entry(concept, report, urllib.parse.quote(page_name(concept)))
    entry["problem"] = problem
    entry["build_seconds"] = time.perf_counter() - started
    entry["cpu_seconds"] = {"run": cpu_run, "plots": cpu_plots,
                            "total": time.process_time() - cpu}
    return entry


def _build_by_name(name: str, directory: str, seed: int) -> dict[str, Any]:
    """A worker process's job: concepts travel by name (their functions do not pickle)."""
    import torch

    from compare import registry
    torch.set_num_threads(1)
    return build_page(registry.get(name), Path(directory), seed)


def read_bench(path: Path) -> dict[str, float]:
    """NumPy/torch time ratios by concept from ``dualgrad bench --json`` output (JSON lines)."""
    import json
    ratios = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise SiteError(f"cannot read --bench file '{path}': {error.strerror or error}") \
            from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            raise SiteError(f"{path}:{number}: not a JSON line of 'dualgrad bench --json'") \
                from None
        if isinstance(record, dict) and isinstance(record.get("numpy_over_torch"), (int, float)):
            ratios[str(record.get("concept"))] = float(record["numpy_over_torch"])
    return ratios


def build_site(directory: Path, concepts: Sequence[Any], *, seed: int = 0, jobs: int = 1,
               bench: Mapping[str, float] | None = None,
               progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Write every concept's page and the index into ``directory`` (see the module
    docstring); ``progress`` gets one line per finished concept. Returns the index entries."""
    directory = Path(directory)
    prepare_directory(directory)
    started = time.perf_counter()
    entries: dict[str, dict[str, Any]] = {}

    def done(k: int, entry: dict[str, Any]) -> None:
        entries[entry["name"]] = entry
        if progress is None:
            return
        note = f" -- {entry['problem']}" if entry["problem"] else ""
        cpu = entry["cpu_seconds"]
        progress(f"[{k}/{len(concepts)}] {entry['family']}/{entry['name']}: "
                 f"{entry['verdict']} ({entry['build_seconds']:.1f} s, CPU {cpu['run']:.1f} s "
                 f"comparing + {cpu['plots']:.1f} s plotting; "
                 f"{time.perf_counter() - started:.0f} s elapsed){note}")

    if jobs > 1 and len(concepts) > 1:
        import multiprocessing
        # fork: the workers inherit the imported library instead of importing torch again
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context(method)) as pool:
            # concepts with their own runner or figures (training runs) are the slow ones:
            # started first, they do not leave one process working alone at the end
            heavy_first = sorted(concepts, key=lambda c: c.run is None and c.extra_plots is None)
            futures = [pool.submit(_build_by_name, c.name, str(directory), seed)
                       for c in heavy_first]
            for k, future in enumerate(as_completed(futures), start=1):
                done(k, future.result())
    else:
        for k, concept in enumerate(concepts, start=1):
            done(k, build_page(concept, directory, seed))
    ordered = [entries[c.name] for c in concepts]
    for entry in ordered:
        entry["ratio"] = (bench or {}).get(entry["name"])
    from compare.site.html import index_page
    index = index_page(ordered, versions=versions(), seed=seed,
                       date=datetime.datetime.now(datetime.timezone.utc)
                       .strftime("%Y-%m-%d %H:%M UTC"))
    (directory / "index.html").write_text(index, encoding="utf-8")
    return ordered


def cpu_count() -> int:
    """CPUs this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def stderr_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
