"""The learning site (``dualgrad report``), the role alignment and ``dualgrad show``.

The browser's view of the site is tested in test_browser.py; here: the alignment's pairing and
completeness, the terminal rendering, escaping, the comparison table, the directory rules, a
relocatable offline site, and the plotting's linear cost.
"""
import html.parser
import os
import re
import shutil
import time

import numpy as np
import pytest

from compare import registry
from compare.cli import main
from compare.concept import Concept
from compare.metrics import measure, referee
from compare.report import Report
from compare.site import MARKER, SiteError, build_site, prepare_directory
from compare.site.align import AUTOGRAD_NOTE, align_files, align_sources, render_terminal
from compare.site.html import concept_page, index_entry, index_page, report_table
from compare.tolerances import Tolerance

ANSI = re.compile(r"\033\[[0-9;]*m")


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _rows(name):
    concept = registry.get(name)
    return align_files(concept.source_path("numpy_impl"), concept.source_path("torch_impl"))


def _row(rows, role):
    return next(r for r in rows if r.role == role)


# --- the alignment --------------------------------------------------------------------------
def test_layernorm_pairs_init_forward_and_backward_with_autograd():
    rows = _rows("layernorm")
    roles = [r.role for r in rows]
    assert roles[:5] == ["module docstring and imports", "class LayerNorm", "LayerNorm.__init__",
                         "LayerNorm.forward", "LayerNorm.backward"]
    forward = _row(rows, "LayerNorm.forward")
    assert [p.name for p in forward.numpy] == ["forward"] == [p.name for p in forward.torch]
    assert forward.numpy[0].text.lstrip().startswith("def forward")
    assert forward.torch[0].text.lstrip().startswith("def forward")
    backward = _row(rows, "LayerNorm.backward")
    assert [p.name for p in backward.numpy] == ["backward"] and backward.torch == []
    assert backward.torch_note == AUTOGRAD_NOTE and "loss.backward()" in AUTOGRAD_NOTE
    assert roles[-1] == "helpers"  # helpers after
    assert "layernorm_backward" in [p.name for p in _row(rows, "helpers").numpy]


def test_line_numbers_are_the_files_own():
    concept = registry.get("layernorm")
    lines = concept.source_path("numpy_impl").read_text().splitlines()
    piece = _row(_rows("layernorm"), "LayerNorm.forward").numpy[0]
    assert lines[piece.first - 1 + piece.text.count("\n")] == piece.text.splitlines()[-1]
    assert lines[piece.first - 1] == piece.text.splitlines()[0]


@pytest.mark.parametrize("name", sorted(registry.concepts()))
def test_every_line_of_both_files_is_shown_exactly_once(name):
    concept = registry.get(name)
    rows = _rows(name)
    for tree, side in (("numpy_impl", "numpy"), ("torch_impl", "torch")):
        source = concept.source_path(tree).read_text().splitlines()
        shown: list[int] = []
        for row in rows:
            for piece in getattr(row, side):
                for k, line in enumerate(piece.text.splitlines()):
                    assert source[piece.first - 1 + k] == line
                    shown.append(piece.first + k)
        assert len(shown) == len(set(shown)), f"{name}: a {side} line is shown twice"
        missing = [n for n, line in enumerate(source, start=1) if line.strip()
                   and n not in set(shown)]
        assert missing == [], f"{name}: {side} lines {missing[:5]} are not shown"


def test_comments_above_a_definition_travel_with_it_and_one_sided_pieces_stay_apart():
    numpy_source = ('"""doc"""\nimport numpy as np\n\n\n# the slope\ndef slope(x):\n'
                    '    return x\n\n\nclass Only:\n    pass\n\n\nclass Pair:\n'
                    '    def helper(self):\n        pass\n\n    def forward(self, x):\n'
                    '        return x\n\n    def __init__(self):\n        pass\n')
    torch_source = ('import torch\n\n\nclass Pair(torch.nn.Module):\n'
                    '    def forward(self, x):\n        return x\n\n'
                    '    # built by torch\n    def __init__(self):\n        super().__init__()\n\n'
                    '    def backward(self, g):\n        return g\n\n\ndef slope(x):\n'
                    '    return x\n')
    rows = align_sources(numpy_source, torch_source)
    roles = [r.role for r in rows]
    assert roles == ["module docstring and imports", "class Pair", "Pair.__init__",
                     "Pair.forward", "Pair.backward", "Pair: other methods",
                     "classes in one file only", "function slope"]
    init = _row(rows, "Pair.__init__")
    assert init.torch[0].text.startswith("    # built by torch")  # the comment came along
    assert init.torch[0].first == 8
    assert _row(rows, "function slope").numpy[0].text.startswith("# the slope")
    backward = _row(rows, "Pair.backward")  # torch has its own backward: no autograd note
    assert backward.numpy == [] and backward.torch[0].name == "backward"
    assert backward.torch_note == ""
    assert _row(rows, "classes in one file only").torch == []


# --- the terminal ---------------------------------------------------------------------------
def test_terminal_rendering_fits_the_width_wraps_and_colours_only_when_asked():
    rows = _rows("layernorm")
    for width in (60, 100, 181):
        plain = render_terminal(rows, ("numpy_impl/x.py", "torch_impl/x.py"), width, False)
        assert "\033" not in plain
        assert max(len(line) for line in plain.splitlines()) <= width
        coloured = render_terminal(rows, ("numpy_impl/x.py", "torch_impl/x.py"), width, True)
        assert "\033[" in coloured
        assert ANSI.sub("", coloured) == plain  # colour adds escapes, never moves text
    # wrapped, not clipped: every character of the NumPy forward is still there
    forward = _row(rows, "LayerNorm.forward").numpy[0].text
    plain = render_terminal(rows, ("a", "b"), 60, False)
    left = "".join(line[5:(60 - 3) // 2] for line in plain.splitlines())
    assert "".join(forward.split()) in "".join(left.split())


def test_forward_rows_start_on_the_same_terminal_line():
    plain = render_terminal(_rows("layernorm"), ("a", "b"), 160, False)
    line = next(x for x in plain.splitlines() if "def forward" in x)
    left, right = line.split(" | ", 1)
    assert "def forward" in left and "def forward" in right


def test_show_is_plain_when_piped_and_clamps_the_width(capsys, monkeypatch):
    code, out, _ = run(capsys, "show", "layernorm", "--width", "100000")
    assert code == 0 and "\033" not in out
    assert max(len(line) for line in out.splitlines()) <= 400
    assert "== LayerNorm.backward" in out and "loss.backward()" in out
    code, out, _ = run(capsys, "show", "layernorm", "--width", "3")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 60


def test_show_colours_a_terminal_unless_no_color(capsys, monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)
    _, out, _ = run(capsys, "show", "linear", "--width", "120")
    assert "\033[" in out
    monkeypatch.setenv("NO_COLOR", "1")
    _, out, _ = run(capsys, "show", "linear", "--width", "120")
    assert "\033" not in out


# --- escaping and the comparison table ------------------------------------------------------
EVIL = "<script>alert(1)</script>"


def _report(diagnosis=EVIL):
    rng = np.random.default_rng(0)
    b = rng.standard_normal((3, 4))
    good = measure(b + 1e-13, b, Tolerance(1e-10), case="plain", dtype="float64",
                   check="numpy-vs-torch", name="out")
    bad = measure(b + 1.0, b, Tolerance(1e-10), case=EVIL, dtype="float64",
                  check="numpy-vs-torch", name="grad.input.x")
    bad.diagnosis = diagnosis
    f32 = measure(b.astype(np.float32), b.astype(np.float32), Tolerance(1e-4), case="plain",
                  dtype="float32", check="numpy-vs-torch", name="out")
    f32.referee = referee(b.astype(np.float32), b.astype(np.float32) * 1.001, b)
    return Report(concept="evil", family="layers", summary=EVIL, seed=3,
                  diffs=[good, f32, bad])


def test_report_table_puts_failures_first_with_their_diagnosis_and_folds_passing_rows():
    page = report_table(_report(diagnosis="the gradient is off by one everywhere"))
    failing, passing = page.index("class=\"fail\""), page.index("<details")
    assert failing < passing
    assert "the gradient is off by one everywhere" in page[failing:passing]
    assert "2\npassing rows" in page
    # the float64 referee column: the float32 NumPy value is the truth rounded (~3e-8 off)
    assert re.search(r"<td>numpy \(numpy \d\.\de-0[78], torch 1\.0e-03\)</td>", page)
    assert "First point of divergence" not in page  # no intermediates, no divergence table


def test_every_page_escapes_what_it_shows():
    report = _report()
    concept = Concept(name="evil", family="layers", summary=EVIL, cases=[], compares=EVIL,
                      witness=EVIL)
    rows = align_sources(f'"""{EVIL}"""\n', f"# {EVIL}\nx = 1\n")
    page = concept_page(concept, report, rows, math_text=EVIL, titles=(EVIL, EVIL),
                        figures=[("a.png", EVIL)], versions={"dualgrad": EVIL, "numpy": "1",
                                                             "torch": "2"})
    index = index_page([index_entry(concept, report, "evil.html")],
                       versions={"dualgrad": EVIL, "numpy": "1", "torch": "2"}, seed=0,
                       date=EVIL)
    for text in (page, index, report._repr_html_()):
        assert "<script" not in text
        assert "&lt;script&gt;" in text
    assert page.count("&lt;script&gt;") >= 8  # summary, case, diagnosis, math, code, ...


def test_repr_html_is_rendered_by_the_same_templates():
    report = _report(diagnosis="off by one")
    notebook = report._repr_html_()
    assert notebook.startswith("<div class='dualgrad-report'><style>")
    assert report_table(report, style=False) in notebook


# --- the directory --------------------------------------------------------------------------
def test_report_refuses_an_empty_name_and_a_users_folder(capsys, tmp_path):
    code, _, err = run(capsys, "report", "", "linear")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "DIR is empty" in err
    (tmp_path / "index.html").write_text("mine")
    code, _, err = run(capsys, "report", str(tmp_path), "linear")
    assert code == 2 and "not made by 'dualgrad report'" in err
    assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "index.html").read_text() == "mine"


def test_report_refuses_an_unwritable_directory_in_one_line(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "report", str(blocker / "site"), "linear")
    assert code == 2 and err.startswith("dualgrad: error: cannot write to")
    assert len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "report", str(blocker), "linear")
    assert code == 2 and "is not a directory" in err
    if os.geteuid() != 0:  # root writes anywhere: the permission case needs a normal user
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(SiteError, match="cannot write"):
            prepare_directory(locked)


def test_a_dualgrad_made_folder_can_be_rebuilt(tmp_path):
    prepare_directory(tmp_path / "site")
    assert (tmp_path / "site" / MARKER).exists()
    (tmp_path / "site" / "index.html").write_text("old build")
    prepare_directory(tmp_path / "site")  # marker present: accepted


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("href", "src") and value is not None:
                self.refs.append(value)


def test_the_site_is_offline_relocatable_and_reproducible(capsys, tmp_path):
    code, out, err = run(capsys, "report", str(tmp_path / "built"), "linear", "layernorm",
                         "--seed", "4")
    assert code == 0 and "index.html" in out
    # progress lines come in the order the concepts finish, which the machine's load decides
    for name in ("layers/linear", "layers/layernorm"):
        assert re.search(rf"\[[12]/2\] {name}: agree \(\d+\.\d s, CPU .* s elapsed\)", err)
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "built", moved)  # relocatable: only relative links
    index = (moved / "index.html").read_text()
    assert "numpy " in index and "torch " in index and "seed 4" in index
    for page in ("index.html", "linear.html", "layernorm.html"):
        text = (moved / page).read_text()
        assert "http://" not in text and "https://" not in text and "//cdn" not in text
        links = _Links()
        links.feed(text)
        for ref in links.refs:
            if not ref.startswith("#"):
                assert (moved / ref).is_file(), f"{page} links to missing {ref}"
    page = (moved / "layernorm.html").read_text()
    assert "dualgrad run layernorm --seed 4" in page
    assert 'class="hl' in page or "class='piece hl'" in page  # highlighted
    assert page.index("LayerNorm.forward") < page.index("The comparison")
    assert "<details" in page and "passing" in page


def test_index_shows_the_benchmark_ratio_when_given(capsys, tmp_path):
    bench = tmp_path / "bench.jsonl"
    bench.write_text('{"concept": "linear", "cases": 3, "numpy_ms": 3.0, "torch_ms": 2.0, '
                     '"numpy_over_torch": 1.5}\n{"concept": "cnn", "skipped": "own runner"}\n')
    code, _, _ = run(capsys, "report", str(tmp_path / "s"), "linear", "--bench", str(bench))
    assert code == 0 and "1.50x" in (tmp_path / "s" / "index.html").read_text()
    bench.write_text("not json\n")
    code, _, err = run(capsys, "report", str(tmp_path / "s"), "linear", "--bench", str(bench))
    assert code == 2 and "bench.jsonl:1" in err


def test_parallel_build_writes_the_same_pages(tmp_path):
    concepts = [registry.get("linear"), registry.get("dropout")]
    serial = build_site(tmp_path / "one", concepts, jobs=1)
    parallel = build_site(tmp_path / "two", concepts, jobs=2)
    assert [e["name"] for e in serial] == [e["name"] for e in parallel]
    assert [e["passed"] for e in serial] == [e["passed"] for e in parallel] == [True, True]
    for name in ("linear.html", "dropout.html"):
        one = re.sub(r"[\d.]+ s to compare", "", (tmp_path / "one" / name).read_text())
        two = re.sub(r"[\d.]+ s to compare", "", (tmp_path / "two" / name).read_text())
        assert one == two


def test_an_erroring_concept_still_gets_a_page(tmp_path):
    concept = registry.get("linear")

    def broken_run(concept, seed=0):
        return Report(concept=concept.name, family=concept.family, summary=concept.summary,
                      seed=seed, error="ValueError: the twin raised <here>")

    from compare.site import build_page
    (tmp_path / "s").mkdir()
    entry = build_page(concept, tmp_path / "s", 0, run=broken_run)
    page = (tmp_path / "s" / "linear.html").read_text()
    assert entry["verdict"] == "ERROR" and "the twin raised &lt;here&gt;" in page


def test_a_concept_whose_figures_fail_still_gets_its_page(tmp_path, monkeypatch):
    from dataclasses import replace

    from compare.site import build_page

    def failing_plots(directory, seed):
        raise RuntimeError("no <display>")

    concept = replace(registry.get("dropout"), extra_plots=failing_plots)
    (tmp_path / "s").mkdir()
    entry = build_page(concept, tmp_path / "s", 0)
    page = (tmp_path / "s" / "dropout.html").read_text()
    assert entry["passed"] and "RuntimeError: no &lt;display&gt;" in entry["problem"].replace(
        "<", "&lt;").replace(">", "&gt;")
    assert "could not be drawn: RuntimeError: no &lt;display&gt;" in page


# --- plotting cost --------------------------------------------------------------------------
def test_worst_per_tensor_is_linear_in_the_number_of_diffs(monkeypatch):
    from compare import plots
    calls = []
    original = plots.primary_check
    monkeypatch.setattr(plots, "primary_check", lambda diffs: calls.append(1) or original(diffs))
    b = np.ones(3)
    diffs = [measure(b, b, Tolerance(1e-10), case="c", dtype="float64", check="numpy-vs-torch",
                     name=f"step{k}/grad.param.w{k % 7}", keep_arrays=False)
             for k in range(20000)]
    started = time.perf_counter()
    worst = plots._worst_per_tensor(diffs, "float64")
    assert time.perf_counter() - started < 2.0
    assert len(calls) == 1 and sorted(worst) == [f"grad.param.w{k}" for k in range(7)]


def test_a_private_underscore_does_not_keep_twins_apart():
    row = _row(_rows("optimizers"), "SGD._update")
    assert [p.name for p in row.numpy] == ["_update"] and [p.name for p in row.torch] == ["update"]


def test_a_tensor_that_is_zero_in_exact_arithmetic_keeps_the_error_axis_drawable(tmp_path):
    from compare.plots import figure_for, save
    zero = np.zeros((2, 3))
    held = measure(zero + 1e-14, zero, Tolerance(1e-10, atol=1e-12), case="c", dtype="float64",
                   check="numpy-vs-torch", name="grad.param.b")
    assert held.passed and held.max_rel > 1e250  # relative to a scale of 0
    report = Report(concept="z", family="layers", summary="s", seed=0, diffs=[held])
    fig = figure_for(report)
    assert fig.axes[0].get_xlim()[1] < 1e8  # clipped at 1e6, not stretched to 1e296
    assert save(fig, tmp_path / "z.png").read_bytes()[:4] == b"\x89PNG"


def test_report_refuses_a_negative_jobs_count(capsys, tmp_path):
    code, _, err = run(capsys, "report", str(tmp_path / "s"), "linear", "--jobs", "-1")
    assert code == 2 and "--jobs -1" in err and not (tmp_path / "s").exists()
