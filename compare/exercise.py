"""Exercise skeletons: ``dualgrad exercise CONCEPT`` writes a file to fill in.

The skeleton is the reference NumPy class with its constructor kept (so the parameters and
buffers are registered under the right names and shapes) and its ``forward`` and ``backward``
emptied: they raise until you write them. The file's docstring carries the reference's math,
and its last lines say how to check the result with ``dualgrad verify``.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
import types

from compare.verify import VerifyError, select_cases
from numpy_impl.module import Module


def _imports_for(reference: type, init_source: str) -> list[str]:
    """The reference module's import lines, plus imports of its own module-level names that
    the constructor uses (helpers such as ``_as_shape``)."""
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
    used = {n.id for n in ast.walk(ast.parse(textwrap.dedent(init_source)))
            if isinstance(n, ast.Name)}
    own = sorted(name for name in used
                 if name in vars(module) and not isinstance(vars(module)[name], types.ModuleType)
                 and getattr(vars(module)[name], "__module__", None) == module.__name__)
    for base in reference.__bases__:
        if base is not Module:
            lines.append(f"from {base.__module__} import {base.__name__}")
    if own:
        lines.append(f"from {module.__name__} import {', '.join(own)}")
    return lines


def _base_names(reference: type) -> list[str]:
    """The reference's direct base classes by name: its constructor's super().__init__ call
    must reach the same base (a CNN built on a shared feature extractor, say)."""
    return [base.__name__ for base in reference.__bases__]


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
    if not issubclass(reference, Module):
        raise VerifyError(f"exercise skeletons are forward/backward Modules; {name} "
                          f"({concept.qualified_name}) is not one -- copy "
                          f"numpy_impl/{concept.family}/{concept.name}.py and change it instead")
    module = inspect.getmodule(reference)
    init_source = textwrap.dedent(inspect.getsource(reference.__init__))
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

{chr(10).join(_imports_for(reference, init_source))}


class {name}({", ".join(_base_names(reference))}):
    """{inspect.cleandoc(reference.__doc__ or name)}"""

{textwrap.indent(init_source, "    ").rstrip()}

    def forward({_parameters(reference.forward)}):
        """The forward pass; keep in ``self`` whatever backward will need."""
        raise NotImplementedError("exercise: write {name}.forward")

    def backward({_parameters(reference.backward)}):
        """dL/d(each floating-point input) from grad_output; add parameter grads into p.grad."""
        raise NotImplementedError("exercise: write {name}.backward")
''', name
