"""A gibberish-input null (Lines of Thought, arXiv 2410.01545): is the curvature of a text's trajectories
something language does, or what the model does to any token sequence?

Per text, the same model runs on two inputs without language, paired with it:

* ``shuffled_words``: the text's words in a seeded random order (same words, no syntax);
* ``random_tokens``: as many tokens as the text has, drawn uniformly from the vocabulary (seeded).

Statistics per input (layer-wise trajectories, the first ``skip_first`` positions left out): the mean
turning angle, the mean ``|θ − 90°|`` and the mean log length-to-chord (:mod:`tlgeom.geometry.curvature`).
Tests (the text is the unit, :meth:`GibberishTest.tests`): text minus gibberish, two-sided sign flips
across texts, bootstrap CI, Holm over the family. A statistic that does not differ from gibberish is not
evidence that language shapes it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tlgeom._args import check_alpha, check_correction, check_int, check_seed, check_space, check_texts
from tlgeom._errors import bad_arg
from tlgeom._result import Result, jsonable, new_axes
from tlgeom.stats.pvalues import (
    decide_family,
    paired_text_row,
    tests_table,
)

__all__ = ["GIBBERISH", "GibberishTest", "gibberish_test"]

#: the two inputs without language, each paired with its text
GIBBERISH = ("shuffled_words", "random_tokens")
STATISTICS = ("mean_angle", "mean_abs_dev", "log_ltc")


@dataclass
class GibberishTest(Result):
    """Per-text curvature statistics of each text and its gibberish counterparts, and the paired tests.

    Attributes:
        per_text: one row per text: each statistic for ``text`` and each of :data:`GIBBERISH`.
        table: :meth:`tests`. alpha, correction, space, seed.
    """

    per_text: Any
    table: Any
    alpha: float = 0.05
    correction: str = "holm"
    space: str = "raw"
    seed: int | None = 0

    result_name = "gibberish"

    def tests(self):
        """One row per (gibberish, statistic): observed (text mean), null_mean (gibberish mean), effect,
        bootstrap CI, two-sided sign-flip p, adjusted p, n (texts), reject, informative, note."""
        return tests_table(self.table, "text")

    def to_frame(self):
        return self.per_text.copy()

    def headline(self) -> dict[str, Any]:
        return jsonable({"n_texts": int(len(self.per_text)), "tests": self.table.to_dict(orient="records")})

    def summary(self) -> str:
        lines = [f"text against gibberish inputs ({self.space} space, {len(self.per_text)} texts, paired per text):"]
        for r in self.tests().itertuples():
            verdict = (
                "differs" if r.reject else "cannot reject at any data" if not r.informative else "not shown to differ"
            )
            lines.append(
                f"  {r.statistic} vs {r.null}: text {r.observed:.4g}, gibberish {r.null_mean:.4g}, effect {r.effect:+.3g} "
                f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}], {self.correction} p {r.p_adjusted:.3g} → {verdict}"
            )
        return "\n".join(lines)

    def plot(self, ax: Any = None):
        """Each statistic, text against each gibberish input, one line per text; returns the figure."""
        fig, ax = new_axes(ax, (7, 4))
        d = self.per_text
        for i, st in enumerate(STATISTICS):
            for j, kind in enumerate(("text", *GIBBERISH)):
                y = d[f"{st}_{kind}"].to_numpy()
                spread = (y - np.nanmean(d[f"{st}_text"])) / (np.nanstd(d[f"{st}_text"]) or 1.0)
                ax.scatter(np.full(len(y), 4 * i + j), spread, s=8, color=["tab:red", "tab:blue", "tab:gray"][j])
        ax.set_xticks([4 * i + 1 for i in range(len(STATISTICS))])
        ax.set_xticklabels(STATISTICS, fontsize=8)
        ax.set_ylabel("standardised by the texts (red: text, blue: shuffled, grey: random)")
        ax.set_title("curvature of text against gibberish inputs", fontsize=9)
        return fig


def _statistics(model: Any, tokens: torch.Tensor, space: str, skip_first: int, norm: str, eps: float) -> dict:
    from tlgeom.geometry.curvature import length_to_chord, turning_angles
    from tlgeom.models.trajectory import record_trajectories

    x = record_trajectories(model, tokens).states[0].to(torch.float64)[skip_first:]
    deg = torch.rad2deg(turning_angles(x, space, norm, eps))
    return {
        "mean_angle": float(deg.nanmean()),
        "mean_abs_dev": float((deg - 90).abs().nanmean()),
        "log_ltc": float(torch.log(length_to_chord(x, space, norm, eps)).nanmean()),
    }


def gibberish_test(
    model: Any,
    inputs: Sequence[str],
    *,
    space: str = "raw",
    skip_first: int = 1,
    seed: int | None = 0,
    alpha: float = 0.05,
    correction: str = "holm",
    n_resamples: int = 9999,
    progress: bool = False,
) -> GibberishTest:
    """Each text against its word-shuffled and random-token counterparts on the same model (module doc).

    Args:
        model: a TransformerLens model with a tokenizer. inputs: a list of texts (each one unit; at least 3).
        space: ``"raw"`` or ``"normalized"``. skip_first: leading positions left out (BOS).
        seed: the shuffles, the random tokens, the sign flips and the bootstrap. alpha, correction: the family.
        n_resamples: sign-flip patterns / bootstrap resamples. progress: a tqdm bar over texts.
    """
    import pandas as pd
    from tqdm.auto import tqdm

    from tlgeom.models.conventions import model_normalization

    inputs = check_texts(inputs)
    space = check_space(space)
    check_int("skip_first", skip_first, 0)
    seed = check_seed(seed)
    alpha, correction = check_alpha(alpha), check_correction(correction)
    check_int("n_resamples", n_resamples, 99)
    norm, eps = model_normalization(model) if space == "normalized" else ("rms", 1e-5)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(0 if seed is None else seed)
    vocab = int(model.cfg.d_vocab)
    rows = []
    for i, text in enumerate(tqdm(list(inputs), disable=not progress, desc="texts")):
        tokens = model.to_tokens(text)
        words = text.split()
        rng.shuffle(words)
        shuffled = model.to_tokens(" ".join(words))
        n_special = int(model.to_tokens("the").shape[-1]) - 1  # BOS / CLS the tokenizer adds in front
        random_ids = tokens.clone()
        random_ids[:, n_special:] = torch.randint(0, vocab, (1, tokens.shape[-1] - n_special), generator=gen)
        if tokens.shape[-1] - skip_first < 3:
            raise bad_arg("inputs", text, f"texts of at least {3 + skip_first} tokens (skip_first={skip_first})")
        row: dict[str, Any] = {"text_id": i, "n_tokens": int(tokens.shape[-1])}
        for kind, toks in (("text", tokens), ("shuffled_words", shuffled), ("random_tokens", random_ids)):
            for st, v in _statistics(model, toks, space, skip_first, norm, eps).items():
                row[f"{st}_{kind}"] = v
        rows.append(row)
    per = pd.DataFrame(rows)
    table = []
    for kind in GIBBERISH:
        for st in STATISTICS:
            obs, ref = per[f"{st}_text"].to_numpy(float), per[f"{st}_{kind}"].to_numpy(float)
            note = "paired per text, two-sided sign flips"
            table.append(
                paired_text_row(kind, st, space, obs, ref, "two-sided", n_resamples=n_resamples, seed=seed, note=note)
            )
    t = pd.DataFrame(table)
    t = decide_family(t, alpha, correction)
    return GibberishTest(per_text=per, table=t, alpha=alpha, correction=correction, space=space, seed=seed)
