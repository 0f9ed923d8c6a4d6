"""The comparison engine: concepts, the runner, reports, plots, finite differences, the CLI."""
from compare.concept import Case, Concept, Outcome, Trial
from compare.finite_diff import check_function_gradients, check_module_gradients, numerical_gradient
from compare.registry import concepts, get
from compare.report import Diff, Report
from compare.runner import run_concept
from compare.tolerances import Tolerance
from compare.verify import verify  # the function (the submodule stays compare.verify's module)

__all__ = ["Case", "Concept", "Diff", "Outcome", "Report", "Tolerance", "Trial",
           "check_function_gradients", "check_module_gradients", "concepts", "get",
           "numerical_gradient", "run_concept", "verify"]
