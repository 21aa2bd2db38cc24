"""Straightening (Hosseini & Fedorenko 2023): do a sentence's token states lie on a straighter path, across
tokens, deeper in the model than at its input?

At each trajectory point ``l`` (the embedding, each block's output) a text's states ``x_{t,l}`` over its
tokens ``t`` form a path; its curvature ``c_l`` is the mean angle between consecutive steps
``x_{t+1,l} − x_{t,l}`` (:func:`tlgeom.geometry.curvature.sequence_curvature`, degrees here; the first
``skip_first`` positions, BOS, left out). Per text two pre-specified contrasts:

* ``straightening_last``: ``c_0 − c_L`` (input against the last point);
* ``straightening_mid``: ``c_0 − c_{L/2}`` (input against mid depth, where the effect is reported to peak).

Tests (the text is the unit, :meth:`StraighteningTest.tests`): null ``"zero"``, the contrast has mean 0
(one-sided sign flips across texts: "straighter" means > 0); null ``"untrained"``, the trained contrast
minus the same architecture re-initialised (paired per text, against every initialisation of
``init_seeds``: the largest p counts). Holm over the four rows. Evidence against straightening: no row
rejects, or the untrained model straightens as much (then it is architecture, not learning).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tlgeom._args import (
    check_alpha,
    check_correction,
    check_init_seeds,
    check_int,
    check_seed,
    check_space,
    check_texts,
)
from tlgeom._errors import bad_arg
from tlgeom._result import Result, jsonable, new_axes
from tlgeom.stats.pvalues import (
    decide_family,
    paired_text_row,
    tests_table,
)

__all__ = ["CONTRASTS", "StraighteningTest", "straightening_test"]

#: the pre-specified contrasts: name → the point compared with the input (a function of the last point index)
CONTRASTS = {"straightening_last": lambda last: last, "straightening_mid": lambda last: last // 2}


@dataclass
class StraighteningTest(Result):
    """Across-token curvature per layer, trained and untrained, and the straightening tests.

    Attributes:
        curvature: ``[text, point]`` the trained model's across-token curvature, degrees.
        reference: ``[init, text, point]`` the same for each untrained initialisation (None: not run).
        point_labels: the trajectory points. table: :meth:`tests`. init_seeds, alpha, correction, space.
    """

    curvature: torch.Tensor
    reference: torch.Tensor | None
    point_labels: list[str]
    table: Any
    init_seeds: list[int]
    alpha: float = 0.05
    correction: str = "holm"
    space: str = "raw"

    result_name = "straightening"

    def tests(self):
        """One row per (null, contrast): observed (mean contrast, degrees), null_mean, effect, bootstrap CI,
        sign-flip p, Holm-adjusted p, n (texts), reject, informative and note."""
        return tests_table(self.table, "text")

    def to_frame(self):
        import pandas as pd

        rows = []
        for model, values in [("trained", self.curvature[None])] + (
            [("untrained", self.reference)] if self.reference is not None else []
        ):
            for k, per_text in enumerate(values):
                for t, curve in enumerate(per_text):
                    for p, c in enumerate(curve.tolist()):
                        rows.append(
                            {"model": model, "init": k, "text": t, "point": self.point_labels[p], "curvature": c}
                        )
        return pd.DataFrame(rows)

    def headline(self) -> dict[str, Any]:
        return jsonable(
            {
                "n_texts": int(self.curvature.shape[0]),
                "curvature_by_point": self.curvature.nanmean(0).tolist(),
                "untrained_by_point": None if self.reference is None else self.reference.nanmean((0, 1)).tolist(),
                "init_seeds": self.init_seeds,
                "tests": self.table.to_dict(orient="records"),
            }
        )

    def summary(self) -> str:
        c = self.curvature.nanmean(0)
        lines = [
            f"across-token curvature ({self.space} space, {self.curvature.shape[0]} texts): {c[0]:.1f}° at "
            f"{self.point_labels[0]}, {c[len(c) // 2]:.1f}° at {self.point_labels[len(c) // 2]}, {c[-1]:.1f}° at "
            f"{self.point_labels[-1]} (straighter = smaller)"
        ]
        for r in self.tests().itertuples():
            verdict = "rejected" if r.reject else "cannot reject at any data" if not r.informative else "not rejected"
            lines.append(
                f"  {r.statistic} vs {r.null}: effect {r.effect:+.3g}° [{r.ci_low:+.3g}, {r.ci_high:+.3g}], "
                f"{self.correction} p {r.p_adjusted:.3g} → {verdict}"
            )
        return "\n".join(lines)

    def plot(self, ax: Any = None):
        """Mean across-token curvature per point, trained and each untrained initialisation; returns the figure."""
        fig, ax = new_axes(ax, (7, 4))
        x = np.arange(len(self.point_labels))
        ax.plot(x, self.curvature.nanmean(0).numpy(), "o-", color="tab:red", label="trained")
        if self.reference is not None:
            for k, ref in enumerate(self.reference):
                ax.plot(x, ref.nanmean(0).numpy(), "-", color="0.6", lw=1, label="untrained" if k == 0 else None)
        ax.set_xticks(x[:: max(1, len(x) // 12)])
        ax.set_xticklabels(self.point_labels[:: max(1, len(x) // 12)], rotation=90, fontsize=7)
        ax.set_ylabel("across-token curvature (°)")
        ax.set_title("straightening: curvature of the token path at each layer", fontsize=9)
        ax.legend(fontsize=8)
        return fig


def _curvatures(model: Any, texts: list[str], space: str, skip_first: int) -> torch.Tensor:
    """``[text, point]`` across-token curvature in degrees of each text (positions from ``skip_first`` on)."""
    from tlgeom.geometry.curvature import sequence_curvature
    from tlgeom.models.conventions import model_normalization
    from tlgeom.models.trajectory import record_trajectories

    norm, eps = model_normalization(model) if space == "normalized" else ("rms", 1e-5)
    out = []
    for text in texts:
        x = record_trajectories(model, text).states[0].to(torch.float64)[skip_first:]
        if x.shape[0] < 3:
            raise bad_arg("inputs", text, f"texts of at least {3 + skip_first} tokens (skip_first={skip_first})")
        out.append(torch.rad2deg(sequence_curvature(x, space, norm, eps)))
    return torch.stack(out)


def straightening_test(
    model: Any,
    inputs: Sequence[str],
    *,
    space: str = "raw",
    skip_first: int = 1,
    untrained: bool = True,
    init_seeds: int | Sequence[int] = 1,
    seed: int | None = 0,
    alpha: float = 0.05,
    correction: str = "holm",
    n_resamples: int = 9999,
    progress: bool = False,
) -> StraighteningTest:
    """Straightening of the texts' token paths with depth, against zero and the untrained model (module doc).

    Args:
        model: a TransformerLens model. inputs: a list of texts (each one unit; at least 3).
        space: ``"raw"`` or ``"normalized"`` (:func:`~tlgeom.geometry.curvature.to_space`).
        skip_first: leading positions left out (BOS, an attention sink).
        untrained: also run the untrained reference(s). init_seeds: a count (seeds 0, 1, …) or the seeds.
        seed: sign-flip and bootstrap seed. alpha, correction: the family's level and correction.
        n_resamples: sign-flip patterns / bootstrap resamples. progress: accepted for the common vocabulary.
    """
    inputs = check_texts(inputs)
    space = check_space(space)
    check_int("skip_first", skip_first, 0)
    seed = check_seed(seed)
    alpha, correction = check_alpha(alpha), check_correction(correction)
    check_int("n_resamples", n_resamples, 99)
    seeds = check_init_seeds(init_seeds)
    from tlgeom.models.trajectory import record_trajectories

    labels = list(record_trajectories(model, inputs[0]).point_labels)
    curvature = _curvatures(model, list(inputs), space, skip_first)
    reference = None
    if untrained:
        from tlgeom.models.untrained import untrained_model

        refs = []
        for s in seeds:
            um = untrained_model(model, s)
            try:
                refs.append(_curvatures(um, list(inputs), space, skip_first))
            finally:
                del um
        reference = torch.stack(refs)
    last = curvature.shape[1] - 1
    rows = []
    for name, point in CONTRASTS.items():
        obs = (curvature[:, 0] - curvature[:, point(last)]).numpy()
        nulls: list[tuple[str, np.ndarray]] = [("zero", np.zeros((1, obs.size)))]
        if reference is not None:
            nulls.append(("untrained", (reference[:, :, 0] - reference[:, :, point(last)]).numpy()))
        for null, refs_k in nulls:
            note = f"{labels[0]} against {labels[point(last)]}"
            rows.append(paired_text_row(null, name, space, obs, refs_k, n_resamples=n_resamples, seed=seed, note=note))
    import pandas as pd

    table = pd.DataFrame(rows)
    table = decide_family(table, alpha, correction)
    return StraighteningTest(
        curvature=curvature,
        reference=reference,
        point_labels=labels,
        table=table,
        init_seeds=seeds if untrained else [],
        alpha=alpha,
        correction=correction,
        space=space,
    )
