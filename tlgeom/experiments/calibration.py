"""Calibration of the curvature tests: false-alarm rate and power over simulated corpora.

Each scenario draws ``n_corpora`` corpora (:mod:`tlgeom.stats.calibrate`: texts whose tokens share
a per-text walk plus private noise), runs a procedure on each, and records how often its family
of tests rejects anything (``tests().reject.any()``):

================  ==========  =======  ============================================================
scenario          space       planted  procedure
================  ==========  =======  ============================================================
``null_raw``      raw         no       :func:`compare_to_nulls` defaults (rotation, shuffle; Holm)
``null_sphere``   normalized  no       :func:`compare_to_nulls` defaults (sphere_rotation; Holm)
``power_raw``     raw         yes      as ``null_raw``, anti-correlated steps (anti = 0.2, ≈ 101°), 20 texts
``old_raw``       raw         no       tlgeom 0.1: all tokens pooled as independent samples,
                                       per-token nulls (gaussian_token, shuffle_token), fixed
                                       110°/70° thresholds, no correction
``old_sphere``    normalized  no       the same on normalized states with walks in R^d
================  ==========  =======  ============================================================

Run ``python -m tlgeom.experiments.calibration`` to regenerate ``results/calibration.csv`` (about a
minute on one core); ``tests/calibration`` asserts the same numbers' bounds.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from tlgeom._args import check_int, check_seed
from tlgeom._errors import bad_arg
from tlgeom.experiments.curvature import compare_to_nulls
from tlgeom.stats.calibrate import dependent_sphere_walks, dependent_walks


@dataclass(frozen=True)
class Scenario:
    name: str
    space: str
    anti: float
    old: bool
    n_texts: int = 8
    n_tokens: int = 4
    n_points: int = 6
    d: int = 8
    n_sims: int = 149


SCENARIOS = {
    "null_raw": Scenario("null_raw", "raw", 0.0, False),
    "null_sphere": Scenario("null_sphere", "normalized", 0.0, False),
    "power_raw": Scenario("power_raw", "raw", 0.2, False, n_texts=20),
    "old_raw": Scenario("old_raw", "raw", 0.0, True),
    "old_sphere": Scenario("old_sphere", "normalized", 0.0, True),
}


def run_scenario(name: str, n_corpora: int, seed: int = 0) -> dict[str, Any]:
    """How often the procedure of scenario ``name`` rejects anything over ``n_corpora`` corpora.

    Returns a dict with the scenario's settings, ``rate`` (fraction of corpora with any
    rejection), its Monte-Carlo standard error and the per-test rejection rates.
    """
    if name not in SCENARIOS:
        raise bad_arg("name", name, f"one of {tuple(SCENARIOS)}")
    n_corpora = check_int("n_corpora", n_corpora, 1)
    sc = SCENARIOS[name]
    gen = torch.Generator().manual_seed(check_seed(seed, allow_none=False))
    make = dependent_walks if sc.space == "raw" else dependent_sphere_walks
    hits, per_test = 0, None
    t0 = time.perf_counter()
    for r in range(n_corpora):
        corpus = make(sc.n_texts, sc.n_tokens, sc.n_points, sc.d, gen, anti=sc.anti)
        if sc.old:
            pooled = torch.cat(corpus)  # every token one independent sample: the 0.1 procedure
            if sc.space == "normalized":
                pooled = pooled * (math.sqrt(sc.d) / torch.linalg.vector_norm(pooled, dim=-1, keepdim=True))
            rep = compare_to_nulls(
                pooled,
                ["gaussian_token", "shuffle_token"],
                sc.n_sims,
                seed + r,
                statistics=["sharp_flat", "log_ltc"],
                thresholds="degrees",
                correction="none",
                n_boot=0,
            )
        else:
            rep = compare_to_nulls(corpus, None, sc.n_sims, seed + r, space=sc.space, n_boot=0)
        t = rep.tests()
        hits += bool(t.reject.any())
        rej = t.reject.to_numpy().astype(float)
        per_test = rej if per_test is None else per_test + rej
    assert per_test is not None  # check_int made n_corpora >= 1, so the loop ran
    rate = hits / n_corpora
    return {
        "scenario": name,
        "space": sc.space,
        "procedure": "tlgeom 0.1 per-token (pooled tokens)" if sc.old else "text-level, joint nulls, Holm",
        "tests": "; ".join(f"{a}:{b}" for a, b in zip(t.null, t.statistic)),
        "anti": sc.anti,
        "corpora": n_corpora,
        "texts": sc.n_texts,
        "tokens_per_text": sc.n_tokens,
        "points": sc.n_points,
        "d": sc.d,
        "n_sims": sc.n_sims,
        "rate_any_reject": rate,
        "mc_se": math.sqrt(max(rate * (1 - rate), 1e-12) / n_corpora),
        "per_test_rates": "; ".join(f"{v / n_corpora:.3f}" for v in per_test),
        "seconds": round(time.perf_counter() - t0, 1),
    }


#: Corpora per scenario in the committed results/calibration.csv.
N_CORPORA = {"null_raw": 400, "null_sphere": 400, "power_raw": 100, "old_raw": 200, "old_sphere": 200}


def main(argv: list[str] | None = None) -> Path:
    """Write ``results/calibration.csv`` (or the path given as the first argument)."""
    import pandas as pd

    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else Path("results/calibration.csv")
    rows = []
    for name, n in N_CORPORA.items():
        row = run_scenario(name, n, seed=0)
        print(f"{name}: rate {row['rate_any_reject']:.3f} ± {row['mc_se']:.3f} ({row['seconds']} s)", flush=True)
        rows.append(row)
    out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(out, index=False)
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
