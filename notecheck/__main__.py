"""`python -m notecheck` runs the same CLI as the `notecheck` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
