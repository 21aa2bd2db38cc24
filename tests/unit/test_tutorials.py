"""The tutorials as committed: outputs stripped, Colab badge → this notebook, install + parameter cells.

(CI executes them with ``pytest --nbmake tutorials``; this checks what a reader opens on GitHub/Colab.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parents[2] / "tutorials").glob("*.ipynb"))
EXPECTED = ["00_quickstart", "01_curvature", "02_eclipse", "03_traveling_words", "04_riemann_heat", "05_language"]


def test_one_notebook_per_experiment():
    assert [p.stem for p in TUTORIALS] == EXPECTED


@pytest.mark.parametrize("path", TUTORIALS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_starts_like_every_tutorial(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb["cells"]
    for cell in cells:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, "outputs must be stripped"
    src = ["".join(c["source"]) for c in cells]
    assert "colab.research.google.com/assets/colab-badge.svg" in src[0]
    assert f"/blob/main/tutorials/{path.name})" in src[0]  # the badge opens this very notebook
    assert "IN_COLAB = 'google.colab' in sys.modules" in src[1] and "git+https://github.com/" in src[1]
    assert "FULL = IN_COLAB" in src[2] and 'MODEL = pick_model("gpt2"' in src[2]
    body = "\n".join(src[3:])
    if path.stem != "00_quickstart":
        assert "evidence against" in body.lower()
    assert "load_model('smollm2-135m')" not in body  # the main model is MODEL (GPT-2 on Colab)
