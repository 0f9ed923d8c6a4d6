"""``python -m compare``: the ``dualgrad`` command line."""
from compare.cli import main

raise SystemExit(main())
