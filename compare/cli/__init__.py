"""The command line (``dualgrad``, ``python -m compare``): ``commands`` parses and runs the
subcommands, ``script`` is what a concept file run as a script shares, ``term`` colours and
draws progress, ``bench`` times the twins.
"""
from compare.cli.commands import (
    EXIT_AGREE,
    EXIT_MISMATCH,
    EXIT_USAGE,
    MAX_SEED,
    UsageError,
    main,
    run_as_script,
    seed_value,
    side_by_side,
    source_files,
)

__all__ = ["EXIT_AGREE", "EXIT_MISMATCH", "EXIT_USAGE", "MAX_SEED", "UsageError", "main",
           "run_as_script", "seed_value", "side_by_side", "source_files"]
