"""The comparison engine: concepts, the runner, reports, plots, finite differences, the CLI."""
from compare.concept import Case, Concept, Outcome, Trial
from compare.finite_diff import check_function_gradients, check_module_gradients, numerical_gradient
from compare.registry import concepts, get
from compare.report import Diff, Report
from compare.runner import run_concept
from compare.tolerances import Tolerance
# The Python API; ``verify`` is the function (the submodule stays sys.modules' compare.verify)
from compare.api import list_concepts, run, show, verify

__all__ = ["Case", "Concept", "Diff", "Outcome", "Report", "Tolerance", "Trial",
           "check_function_gradients", "check_module_gradients", "concepts", "get",
           "list_concepts", "numerical_gradient", "run", "run_concept", "show", "verify"]
