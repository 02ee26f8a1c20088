"""``python -m sklearn_ecluster``: the command line (see :mod:`sklearn_ecluster.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
