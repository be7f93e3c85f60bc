"""`python -m acdc_compare.cli`: the same as the `acdc-compare` command."""

from __future__ import annotations

import sys

from acdc_compare.cli import main

if __name__ == "__main__":
    sys.exit(main())
