#!/usr/bin/env python
"""``tlgeom claims`` writing the repository's committed table, ``results/claims.csv`` (+ ``claims.json``).

The command is declared in :mod:`tlgeom.cli` and runs :mod:`tlgeom.report.claims` (``tlgeom claims --help``);
this script only changes the default ``--out`` (a later ``--out`` wins)::

    python scripts/claims.py                                 # the real run (make claims)
    python scripts/claims.py --parts curvature --spaces normalized
    python scripts/claims.py --readme results/README.md README.md
"""

import sys
from pathlib import Path

from tlgeom.cli import main

if __name__ == "__main__":
    results = Path(__file__).resolve().parents[1] / "results" / "claims.csv"
    raise SystemExit(main(["claims", "--out", str(results), *sys.argv[1:]]))
