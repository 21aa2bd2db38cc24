"""Every analysis on every TransformerBridge family: right (checked against an unbridged HF copy) or refused.

One test per (family, analysis) cell. A cell passes when tlgeom's answer matches the independent
Hugging Face computation (see :mod:`tests.architectures.matrix`) or tlgeom raises a TlgeomError, and
the outcome is the one the committed support table (``results/architectures.csv``, included in the
README) states. A wrong answer (AssertionError) or a raw exception fails. Each family is built once.
"""

from __future__ import annotations

import functools

import pandas as pd
import pytest

from tests.architectures.families import candidates
from tests.architectures.matrix import ANALYSES, ROOT, Family, markdown, readme_block, run_cell


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The hybrid Mamba families (Bamba, Jamba, NemotronH) give batch results that differ from single runs by
    up to 2 % with 2 intra-op threads; the matrix checks exactness, so it runs single-threaded."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


pytestmark = pytest.mark.architectures

TABLE = ROOT / "results" / "architectures.csv"


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, str]]:
    df = pd.read_csv(TABLE, keep_default_na=False)
    return {r["family"]: r for r in df.to_dict("records")}


@functools.lru_cache(maxsize=1)  # the cells of one family run one after the other: built once
def _family(arch: str) -> Family | str:
    try:
        return Family(arch)
    except Exception as exc:  # noqa: BLE001 - the tiny config or the bridge does not build: recorded in the table
        return f"{type(exc).__name__}: {exc}"


CELLS = [(a, an) for a in candidates() for an in ANALYSES]


def test_table_lists_every_registry_family():
    assert sorted(_table()) == sorted(candidates())


@pytest.mark.parametrize(("arch", "analysis"), CELLS, ids=[f"{a}-{an}" for a, an in CELLS])
def test_cell(arch, analysis):
    expected = _table()[arch][analysis]
    f = _family(arch)
    if isinstance(f, str):
        assert expected.startswith("not built"), f"{arch} did not build ({f[:200]}) but the table says {expected!r}"
        pytest.skip(f"tiny {arch} does not build offline: {f[:150]}")
    status, detail = run_cell(f, analysis)  # AssertionError (wrong answer) and raw exceptions fail here
    if status == "ok":
        assert expected == "✓", f"{arch}/{analysis} is right ({detail}) but the table says {expected!r}"
    else:
        assert expected.startswith("refused"), (
            f"{arch}/{analysis} refused ({detail[:200]}) but the table says {expected!r}"
        )


def test_readme_block_matches_table():
    rows = list(_table().values())
    assert readme_block((ROOT / "README.md").read_text()) == markdown(rows).strip()
