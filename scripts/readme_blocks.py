"""Rewrite the README's generated blocks (calibration, costs, facts) from the committed ``results/``.

The renderers live in :mod:`tlgeom.report.readme` (one module for every README block, the claims blocks
included); this script only points them at the repository's ``results/``::

    python scripts/readme_blocks.py README.md      # rewrite every block in place

``tests/unit/test_readme_numbers.py`` regenerates every block and fails when the README differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tlgeom.report.readme import (
    FACT_BLOCKS,
    Facts,
    MissingFact,
    facts_blocks,
    quoted_facts_block,
    render_calibration_block,
    render_costs_block,
    render_facts_block,
    replace_calibration_block,
    replace_costs_block,
    replace_facts_blocks,
)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"

__all__ = [
    "FACT_BLOCKS",
    "Facts",
    "MissingFact",
    "facts_blocks",
    "quoted_facts_block",
    "render_calibration_block",
    "render_costs_block",
    "render_facts_block",
    "replace_calibration_block",
    "replace_costs_block",
    "replace_facts_blocks",
]


def main(argv: list[str]) -> int:
    block = render_calibration_block(RESULTS)
    for name in argv or [str(ROOT / "README.md")]:
        path = Path(name)
        text = replace_calibration_block(path.read_text(), block)
        text = replace_costs_block(replace_facts_blocks(text, RESULTS), RESULTS)
        path.write_text(text)
        print(f"wrote the calibration block and {len(facts_blocks(text))} facts blocks of {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
