"""Exercise skeletons: ``dualgrad exercise CONCEPT`` writes a file to fill in.

The skeleton is the reference NumPy class with its constructor kept (so the parameters and
buffers are registered under the right names and shapes), its other methods kept (what the
runner calls, such as ``configure_optimizers``, and shared pieces), the reference module's
own names that the class uses imported, and its ``forward`` and ``backward`` emptied: they
raise until you write them. Filled with the reference's own bodies, every skeleton passes
``verify`` (tests/test_exercise_skeletons.py). The file's docstring carries the reference's math,
and its last lines say how to check the result with ``dualgrad verify``.
"""
from __future__ import annotations

import ast
import inspect
import textwrap

from compare.verify import VerifyError, select_cases
from numpy_impl.module import Module


def _imports_for(reference: type, class_source: str) -> list[str]:
    """The reference module's import lines, plus imports of its own module-level names that
    the class uses (validators such as ``check_indices``, constants such as ``SCHEMES``,
    helper functions), so that the constructor and helper methods kept in the skeleton run
    and a forward/backward written like the reference's finds the same names."""
    module = inspect.getmodule(reference)
    source = inspect.getsource(module)
    lines = []
    for node in ast.parse(source).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not (
                isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            lines.append(ast.get_source_segment(source, node))
    if not any("numpy_impl.module import" in line or line == "from numpy_impl import Module"
               for line in lines):
        lines.append("from numpy_impl import Module, Parameter")
    used = {n.id for n in ast.walk(ast.parse(textwrap.dedent(class_source)))
            if isinstance(n, ast.Name)}
    defined = _top_level_names(module)  # names the reference module itself defines
    own = sorted(name for name in used if name in defined and name != reference.__name__)
    for base in reference.__bases__:
        if base is not Module:
            lines.append(f"from {base.__module__} import {base.__name__}")
    if own:
        lines.append(f"from {module.__name__} import {', '.join(own)}")
    for method in ("forward", "backward"):  # inherited (RNNBase's): a body written like it
        function = getattr(reference, method)  # needs the names of the module it lives in
        home = inspect.getmodule(function)
        if home is not None and method not in vars(reference):
            names = {n.id for n in ast.walk(ast.parse(textwrap.dedent(
                inspect.getsource(function)))) if isinstance(n, ast.Name)}
            found = sorted(n for n in names if n in _top_level_names(home))
            if found:
                lines.append(f"from {home.__name__} import {', '.join(found)}")
    return list(dict.fromkeys(lines))  # a base class may be imported already


def _top_level_names(module: object) -> set[str]:
    """The functions, classes and constants a module defines at its top level."""
    defined = set()
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return defined


def _base_names(reference: type) -> list[str]:
    """The reference's direct base classes by name: its constructor's super().__init__ call
    must reach the same base (a CNN built on a shared feature extractor, say)."""
    return [base.__name__ for base in reference.__bases__]


def _class_attributes(reference: type) -> str:
    """The reference's class-level settings (``gate_count = 3``): its base class reads them."""
    source = textwrap.dedent(inspect.getsource(reference))
    body = ast.parse(source).body[0].body
    kept = [ast.get_source_segment(source, node) for node in body
            if isinstance(node, (ast.Assign, ast.AnnAssign))]
    return textwrap.indent("\n".join(kept), "    ") + "\n\n" if kept else ""


def _helper_methods(reference: type) -> str:
    """The reference's own methods other than the constructor, forward and backward
    (``configure_optimizers``, input checks, shared pieces of the backward pass): the runner
    or the reference's structure needs them, and they are not the exercise."""
    kept = []
    for name, value in vars(reference).items():
        if name in ("__init__", "forward", "backward") or not callable(
                getattr(value, "__func__", value)):
            continue
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):  # generated (dataclass) methods have no source
            continue
        kept.append(textwrap.indent(textwrap.dedent(source).rstrip(), "    "))
    return "\n\n".join(kept)


def _parameters(function: object) -> str:
    """A signature's parameters as source, without annotations: ``self, x, mask=None``."""
    parts = []
    for p in inspect.signature(function).parameters.values():
        text = p.name if p.default is inspect.Parameter.empty else f"{p.name}={p.default!r}"
        if p.kind is inspect.Parameter.VAR_POSITIONAL:
            text = f"*{p.name}"
        parts.append(text)
    return ", ".join(parts)


def skeleton(spec: str) -> tuple[str, str]:
    """The exercise file for ``spec`` (``layernorm``, ``activations:GELU``) and its class name."""
    concept, _, reference = select_cases(spec, own_name="")
    name = reference.__name__
    if not inspect.isclass(reference):
        raise VerifyError(f"{name} ({concept.qualified_name}) is a function, not a forward/"
                          f"backward Module, so it has no skeleton -- copy "
                          f"numpy_impl/{concept.family}/{concept.name}.py and change {name} "
                          f"instead, then run 'dualgrad verify {spec} FILE.py:{name}'")
    if not issubclass(reference, Module):
        raise VerifyError(f"exercise skeletons are forward/backward Modules; {name} "
                          f"({concept.qualified_name}) is not one -- copy "
                          f"numpy_impl/{concept.family}/{concept.name}.py and change it instead")
    module = inspect.getmodule(reference)
    # an inherited constructor stays inherited (copying it would call the wrong super())
    init_source = textwrap.dedent(inspect.getsource(reference.__init__)) \
        if "__init__" in vars(reference) else ""
    helpers = _helper_methods(reference)
    math = textwrap.indent(inspect.cleandoc(module.__doc__ or ""), "    ")
    file_name = f"my_{concept.name}.py"
    verify_spec = spec if ":" in spec else concept.name
    where = concept.qualified_name
    return f'''"""Exercise: write {name}.forward and {name}.backward by hand ({where}).

The reference is numpy_impl/{concept.family}/{concept.name}.py; its math:

{math}

The constructor below is the reference's: parameters and buffers are registered under the
names and shapes the comparison expects. Write forward (cache what backward needs) and
backward (return the gradient of each floating-point input; add each parameter's gradient
into p.grad), then check your work on every case of the concept:

    dualgrad verify {verify_spec} {file_name}:{name}
"""
from __future__ import annotations

{chr(10).join(_imports_for(reference, inspect.getsource(reference)))}


class {name}({", ".join(_base_names(reference))}):
    """{inspect.cleandoc(reference.__doc__ or name)}"""

{_class_attributes(reference)}{textwrap.indent(init_source, "    ").rstrip()}
{(chr(10) + helpers + chr(10)) if helpers else ""}
    def forward({_parameters(reference.forward)}):
        """The forward pass; keep in ``self`` whatever backward will need."""
        raise NotImplementedError("exercise: write {name}.forward")

    def backward({_parameters(reference.backward)}):
        """dL/d(each floating-point input) from grad_output; add parameter grads into p.grad."""
        raise NotImplementedError("exercise: write {name}.backward")
''', name
