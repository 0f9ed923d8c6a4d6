"""``assert_matches`` for your tests; the pytest plugin itself is ``dualgrad_pytest``.

    from dualgrad_pytest import assert_matches      # works in any project
    from compare.testing import assert_matches      # the same function, kept for old imports

The plugin lives in ``dualgrad_pytest`` (a module name that belongs to this distribution alone)
so that projects with their own ``compare`` module can still load it.
"""
from dualgrad_pytest import assert_matches, assert_matches_fixture, failure_message

__all__ = ["assert_matches", "assert_matches_fixture", "failure_message"]
