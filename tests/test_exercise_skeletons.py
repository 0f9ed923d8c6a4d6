"""Every exercise skeleton, filled with the reference's own forward and backward, passes
verify (one case per class, to stay fast); the concepts without a skeleton say why in one
sentence."""
import ast
import inspect
import textwrap

import pytest

from compare import registry
from compare.verify import VerifyError, load, verify
from compare.verify.exercise import skeleton


def _specs() -> list[tuple[str, type, str]]:
    specs = []
    for concept in registry.concepts().values():
        classes = list(dict.fromkeys(c.numpy for c in concept.cases if c.numpy is not None))
        for cls in classes:
            spec = f"{concept.name}:{cls.__name__}" if len(classes) > 1 else concept.name
            first = next(c.name for c in concept.cases if c.numpy is cls)
            specs.append((spec, cls, first))
    return specs


SPECS = _specs()
# weight_init compares the initial weights the constructor draws (which the skeleton keeps),
# never calling forward or backward: its empty skeleton already passes.
CONSTRUCTOR_ONLY = {"weight_init"}


def fill(text: str, reference: type) -> str:
    """The skeleton with forward and backward replaced by the reference's own methods."""
    lines = text.splitlines()
    tree = ast.parse(text)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == reference.__name__)
    methods = [n for n in cls.body if isinstance(n, ast.FunctionDef)
               and n.name in ("forward", "backward")]
    assert sorted(m.name for m in methods) == ["backward", "forward"]
    for method in sorted(methods, key=lambda n: -n.lineno):  # bottom first: line numbers hold
        body = textwrap.dedent(inspect.getsource(getattr(reference, method.name)))
        lines[method.lineno - 1:method.end_lineno] = textwrap.indent(body, "    ").splitlines()
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("spec, reference, case", SPECS, ids=[s for s, _, _ in SPECS])
def test_a_filled_skeleton_passes_verify(tmp_path, spec, reference, case):
    try:
        text, name = skeleton(spec)
    except VerifyError as error:  # not a forward/backward Module: one sentence, no skeleton
        message = str(error)
        assert "\n" not in message and "copy numpy_impl/" in message
        return
    empty = tmp_path / "empty.py"
    empty.write_text(text)
    unfilled = verify(spec, load(f"{empty}:{name}"), cases=[case])
    if spec in CONSTRUCTOR_ONLY:
        assert unfilled.passed
    else:  # the skeleton really is empty: its forward raises until written, so verify
        # skips every case (the skeleton cannot express it yet) and nothing ran
        assert not unfilled.passed and unfilled.ran == 0
        assert any("exercise: write" in reason for _, reason in unfilled.skipped)
    path = tmp_path / f"my_{reference.__name__.lower()}.py"
    path.write_text(fill(text, reference))
    report = verify(spec, load(f"{path}:{name}"), cases=[case])
    assert report.passed, report.table(failures_only=True)


def test_function_references_get_one_sentence():
    with pytest.raises(VerifyError, match="is a function, not a forward/backward Module"):
        skeleton("gradient_descent:least_squares")
