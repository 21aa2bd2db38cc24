#!/usr/bin/env python
"""``tlgeom claims`` writing the repository's committed table, ``results/claims.csv`` (+ ``claims.json``).

The command itself lives in :mod:`tlgeom.report.claims` (``tlgeom claims --help``); this script only
changes the default ``--out``::

    python scripts/claims.py                                 # the real run (make claims)
    python scripts/claims.py --parts curvature --spaces normalized
    python scripts/claims.py --readme results/README.md README.md
"""

from pathlib import Path

from tlgeom.report.claims import main

if __name__ == "__main__":
    raise SystemExit(main(default_out=Path(__file__).resolve().parents[1] / "results" / "claims.csv", prog="claims.py"))
