"""Checking your own code against a concept's twins: ``verify`` runs it and reports
(``check``), ``user_code`` loads and recognises it, ``diagnose`` names what a mismatch looks
like, ``exercise`` writes a skeleton to fill in, and ``adapters`` take CS231n-style functions
and micrograd-style engines.

    from compare.verify import verify, load, VerifyError, VerifyReport
"""
from compare.verify.check import VerifyReport, verify, verify_file
from compare.verify.user_code import VerifyError, load, load_module, select_cases, user_traceback

__all__ = ["VerifyError", "VerifyReport", "load", "load_module", "select_cases",
           "user_traceback", "verify", "verify_file"]
