"""The README quotes the measured error rates of tlgeom's inference from results/, never by hand."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("tlgeom_readme_blocks", ROOT / "scripts" / "readme_blocks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_calibration_block_matches_results():
    blocks = _script()
    readme = (ROOT / "README.md").read_text()
    assert blocks.BEGIN in readme and blocks.END in readme
    quoted = blocks.BEGIN + readme.split(blocks.BEGIN, 1)[1].split(blocks.END, 1)[0] + blocks.END
    assert quoted == blocks.render_block(), (
        "README calibration numbers differ from results/: run scripts/readme_blocks.py"
    )


def test_block_changes_when_a_result_changes(tmp_path):
    blocks = _script()
    for name in ("calibration.csv", "onset_calibration.csv"):
        (tmp_path / name).write_text((ROOT / "results" / name).read_text())
    before = blocks.render_block(tmp_path)
    text = (tmp_path / "calibration.csv").read_text().replace("0.045,", "0.145,", 1)
    (tmp_path / "calibration.csv").write_text(text)
    assert blocks.render_block(tmp_path) != before
