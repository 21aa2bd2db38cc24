"""Tables and figures that say what their numbers are (issue 27): readable byte-level tokens, models
named by the name the user gave, one quantity per axis."""

from __future__ import annotations

import matplotlib
import pytest

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import torch

from tlgeom.experiments.curvature import compare_to_nulls
from tlgeom.models._compat import token_string
from tlgeom.models.load import model_label


class ByteTokenizer:
    """GPT-2-style byte-level pieces: 東 (E6 9D B1) split over two tokens, then a whole 🙂."""

    pieces = {0: "ĠæĿ", 1: "±", 2: "ĠðŁĻĤ", 3: "Ġis"}
    raw = {0: b" \xe6\x9d", 1: b"\xb1", 2: " 🙂".encode(), 3: b" is"}

    def decode(self, ids):
        return self.raw[ids[0]].decode("utf-8", errors="replace")

    def convert_ids_to_tokens(self, i):
        return self.pieces[i]


def test_byte_level_tokens_are_readable():
    tok = ByteTokenizer()
    assert "\ufffd" in tok.decode([0])
    assert token_string(tok, 0) == " <0xE6><0x9D>" and token_string(tok, 1) == "<0xB1>"
    assert token_string(tok, 2) == " 🙂" and token_string(tok, 3) == " is"


def test_models_are_named_by_the_name_given(tiny_gpt2):
    assert model_label(tiny_gpt2) == (getattr(tiny_gpt2.cfg, "model_name", None) or type(tiny_gpt2).__name__)
    tiny_gpt2.tlgeom_name = "my-model"
    try:
        assert model_label(tiny_gpt2) == "my-model"
    finally:
        del tiny_gpt2.tlgeom_name


def test_curvature_plot_puts_one_quantity_on_each_axis():
    g = torch.Generator().manual_seed(0)
    texts = [torch.randn(5, 6, 16, generator=g, dtype=torch.float64).cumsum(1) for _ in range(4)]
    paired = [x + 0.1 * torch.randn(x.shape, generator=g, dtype=torch.float64) for x in texts]
    rep = compare_to_nulls(texts, ["rotation", "untrained"], 19, 0, n_boot=0, paired={"untrained": paired})
    fig = rep.plot()
    labels = [a.get_xlabel() for a in fig.axes]
    assert len(fig.axes) == 3 and labels[1].startswith("z:") and labels[2].startswith("d_z:")
    assert [len(a.get_yticks()) for a in fig.axes[1:]] == [4, 4]  # rotation's 4 statistics; untrained's 4
    plt.close(fig)


def test_tests_table_is_the_one_table():
    """tests_table: the shared columns first, the family adjusted with stats.pvalues (NaN p not counted),
    reject at alpha, a missing shared column named; every declared claim's result is a TestReport."""
    import numpy as np

    from tlgeom._result import TEST_COLUMNS
    from tlgeom.stats.pvalues import adjust_pvalues, tests_table

    rows = [
        {**dict.fromkeys(TEST_COLUMNS, 0.0), "null": n, "statistic": "s", "p": p, "n_texts": 5, "extra": i}
        for i, (n, p) in enumerate([("a", 0.01), ("b", 0.04), ("c", float("nan")), ("d", 0.03)])
    ]
    t = tests_table(rows, "text", alpha=0.05, correction="holm")
    assert list(t.columns[: len(TEST_COLUMNS)]) == list(TEST_COLUMNS)
    assert list(t.columns[len(TEST_COLUMNS) :]) == ["n", "inference_unit", "extra"]
    np.testing.assert_allclose(t.p_adjusted, adjust_pvalues([0.01, 0.04, np.nan, 0.03], "holm"))
    assert t.reject.tolist() == [True, False, False, False] and (t.n == 5).all()
    kept = tests_table(t.assign(reject=True), "text")  # no correction: the rows' own adjustment is kept
    assert kept.reject.all()
    with pytest.raises(ValueError, match="lack \\['p_adjusted'\\]"):
        tests_table([{k: 0 for k in TEST_COLUMNS if k != "p_adjusted"}], "text")

    from tlgeom._declare import resolve
    from tlgeom.experiments.analyses import ANALYSES

    for a in ANALYSES:  # every analysis the claims table runs returns a TestReport (by its annotation)
        if a.claim is not None:
            fn = resolve(a.run)
            cls = resolve(f"{fn.__module__}:{fn.__annotations__['return']}")
            assert all(
                callable(getattr(cls, m, None)) for m in ("summary", "to_frame", "headline", "plot", "save", "tests")
            ), a.key
