#!/usr/bin/env python
"""Measure every number the README's prose quotes, into one table: ``results/facts.csv``.

The README's Traveling Words and Riemannian sections and the landscape caption quote measured numbers
(how close normalised vectors sit to the √d sphere, residual norm growth, the embedding check, the noun
probe, the circle's Laplacian spectrum, heat kernel vs Gaussian kernel, the paragraph's token count…).
This script computes each with tlgeom's public API on the offline models, with the texts and arguments of
the README's own examples, and writes

* ``results/facts.csv``: one row per fact, columns ``section, fact, model, value, unit, how``
  (``model`` is empty for model-free facts; ``how`` is the call that made the value);
* ``results/facts.json``: the settings (texts, seeds, thread count, run time, tlgeom / torch /
  TransformerLens / Python versions).

``python scripts/readme_blocks.py README.md`` then writes the README's ``<!-- facts:NAME:begin -->`` …
``<!-- facts:NAME:end -->`` blocks from the CSV, and ``tests/unit/test_readme_numbers.py`` fails when
the README differs from what the CSV says.

Usage::

    python scripts/facts.py            # smollm2-135m, then minilm-l6, one at a time (a few minutes, 1 thread)
"""

from __future__ import annotations

import gc
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"
COLUMNS = ["section", "fact", "model", "value", "unit", "how"]

#: the README's Traveling Words example text (``sphere_report``)
SPHERE_TEXT = "To kill two birds with one stone."
#: the README's Riemannian example: ``attention_vs_heat_kernel(model, PARAGRAPH, layers=3)``
HEAT_LAYER = 3
#: graph Laplacian on the unit circle: number of uniform points and the generator seed
CIRCLE_N, CIRCLE_SEED = 1000, 0
#: landscape caption: a turn counts as "near 90°" within this many degrees
NEAR_90_DEG = 10.0
MODELS = ("smollm2-135m", "minilm-l6")


class Table:
    """Rows of the facts table, appended one fact at a time."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, section: str, fact: str, model: str, value: float, unit: str, how: str) -> None:
        value = float(value)
        if not math.isfinite(value):
            raise SystemExit(f"facts: {section}/{fact} on {model or 'no model'} is {value} ({how})")
        self.rows.append(dict(section=section, fact=fact, model=model, value=value, unit=unit, how=how))
        print(f"  {section:10s} {fact:34s} {model or '-':13s} {value:.6g} {unit}", flush=True)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)


def sphere_facts(t: Table, model: Any, name: str) -> None:
    """Traveling Words: the √d sphere, raw residual norms and the embedding check (``sphere_report``)."""
    import tlgeom

    how = f'tlgeom.sphere_report(model, "{SPHERE_TEXT}")'
    r = tlgeom.sphere_report(model, SPHERE_TEXT)
    h = r.headline()
    t.add(
        "sphere",
        "sphere_eps_rel_err_max",
        name,
        h["eps_rel_err_max"],
        "relative",
        how + '.headline()["eps_rel_err_max"]',
    )
    t.add("sphere", "sphere_tol", name, h["tol"], "relative", how + '.headline()["tol"]')
    t.add("sphere", "raw_norm_first", name, h["raw_norm_first"], "norm", how + '.headline()["raw_norm_first"]')
    t.add("sphere", "raw_norm_last", name, h["raw_norm_last"], "norm", how + '.headline()["raw_norm_last"]')
    peak = r.to_frame().raw_norm_mean.max()
    t.add("sphere", "raw_norm_max", name, peak, "norm", how + ".to_frame().raw_norm_mean.max()")
    e = r.embedding_frame().set_index("variant")
    for variant, fact in (("scaled", "embed_l2_scaled"), ("centred & scaled", "embed_l2_centred_scaled")):
        t.add(
            "sphere",
            fact,
            name,
            e.loc[variant, "l2_mean"],
            "L2 distance",
            how + f'.embedding_frame(): l2_mean of "{variant}" vs normalize(E)',
        )


def noun_facts(t: Table, model: Any, name: str) -> None:
    """Traveling Words: how often a noun's value update (OV) points back to itself, first vs last layer."""
    import tlgeom

    last = int(model.cfg.n_layers) - 1
    how = f"tlgeom.noun_probe(model, layers=[0, {last}]).self_rates()['self_value']"
    probe = tlgeom.noun_probe(model, layers=[0, last])
    rate = probe.self_rates()["self_value"].mean(1)
    h = probe.headline()
    t.add(
        "noun_probe",
        "noun_n_nouns",
        name,
        h["n_nouns"],
        "nouns",
        f"tlgeom.noun_probe(model, layers=[0, {last}]).headline()['n_nouns']",
    )
    t.add(
        "noun_probe", "noun_k", name, h["k"], "tokens", f"tlgeom.noun_probe(model, layers=[0, {last}]).headline()['k']"
    )
    t.add(
        "noun_probe", "noun_self_value_first", name, rate[0], "fraction", how + "[0].mean() (layer 0, mean over heads)"
    )
    t.add(
        "noun_probe",
        "noun_self_value_last",
        name,
        rate[1],
        "fraction",
        how + "[1].mean() (last layer, mean over heads)",
    )
    t.add("noun_probe", "last_layer", name, last, "layer", "model.cfg.n_layers - 1")


def heat_facts(t: Table, model: Any, name: str) -> None:
    """Riemannian: heat kernel vs Gaussian kernel on one layer's attention (the README's call)."""
    import tlgeom
    from tlgeom.data import PARAGRAPH

    how = f"tlgeom.attention_vs_heat_kernel(model, PARAGRAPH, layers={HEAT_LAYER}).headline()"
    h = tlgeom.attention_vs_heat_kernel(model, PARAGRAPH, layers=HEAT_LAYER).headline()
    t.add("heat", "heat_layer", name, h["layer"], "layer", how + '["layer"]')
    t.add("heat", "heat_beats_gauss", name, h["n_heat_beats_gauss"], "heads", how + '["n_heat_beats_gauss"]')
    t.add("heat", "heat_n_heads", name, h["n_heads"], "heads", how + '["n_heads"]')


def landscape_facts(t: Table, model: Any, name: str) -> None:
    """The landscape figure's caption: the bundled paragraph on smollm2-135m (``make demo``)."""
    import tlgeom
    from tlgeom.data import PARAGRAPH

    how = "tlgeom.curvature_landscape(model, PARAGRAPH)"
    land = tlgeom.curvature_landscape(model, PARAGRAPH)
    h = land.headline()
    deg = land.degrees.detach().double()
    deg = deg[~torch.isnan(deg)]
    t.add("landscape", "landscape_n_tokens", name, h["n_tokens"], "tokens", how + '.headline()["n_tokens"]')
    t.add("landscape", "d_model", name, land.d_model, "dimensions", how + ".d_model")
    t.add(
        "landscape",
        "landscape_median_deg",
        name,
        h["median_angle_deg"],
        "degrees",
        how + '.headline()["median_angle_deg"]',
    )
    t.add(
        "landscape",
        "landscape_near_90",
        name,
        float(((deg - 90).abs() <= NEAR_90_DEG).double().mean()),
        "fraction",
        how + f".degrees: fraction of defined turns with |θ − 90°| ≤ {NEAR_90_DEG:g}°",
    )


def circle_facts(t: Table) -> None:
    """Riemannian: the diffusion-map Laplacian's first eigenvalues on uniform points of the unit circle."""
    from tlgeom.geometry.heat import DEFAULT_K, graph_laplacian

    g = torch.Generator().manual_seed(CIRCLE_SEED)
    th = 2 * math.pi * torch.rand(CIRCLE_N, generator=g, dtype=torch.float64)
    lam = graph_laplacian(torch.stack([th.cos(), th.sin()], -1)).eigenvalues(5)
    how = (
        f"graph_laplacian(unit circle, {CIRCLE_N} uniform angles from torch.Generator seed {CIRCLE_SEED})"
        ".eigenvalues(5)"
    )
    t.add("circle", "bandwidth_k", "", DEFAULT_K, "neighbour rank", "tlgeom.geometry.heat.DEFAULT_K (the default)")
    t.add("circle", "circle_n_points", "", CIRCLE_N, "points", "CIRCLE_N of scripts/facts.py (the cloud's size)")
    for i in range(1, 5):
        t.add("circle", f"circle_eig_{i}", "", lam[i], "eigenvalue", how + f"[{i}]")


#: per model, the fact groups to run (one model in memory at a time)
PLAN: dict[str, tuple[Callable[[Table, Any, str], None], ...]] = {
    "smollm2-135m": (landscape_facts, sphere_facts, noun_facts, heat_facts),
    "minilm-l6": (sphere_facts, noun_facts),
}


def main() -> int:
    from importlib.metadata import version

    import tlgeom

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    table = Table()
    timings: dict[str, float] = {}
    circle_facts(table)
    for name in MODELS:
        t1 = time.perf_counter()
        print(f"{name}:", flush=True)
        model = tlgeom.load_model(name)
        with torch.no_grad():
            for step in PLAN[name]:
                step(table, model, name)
        del model
        gc.collect()
        timings[name] = round(time.perf_counter() - t1, 1)
    frame = table.frame()
    RESULTS.mkdir(exist_ok=True)
    frame.to_csv(RESULTS / "facts.csv", index=False, float_format="%.10g")
    settings = {
        "models": list(MODELS),
        "sphere_text": SPHERE_TEXT,
        "heat_text": "tlgeom.data.PARAGRAPH",
        "heat_layer": HEAT_LAYER,
        "landscape_text": "tlgeom.data.PARAGRAPH",
        "landscape_near_90_deg": NEAR_90_DEG,
        "circle_points": CIRCLE_N,
        "circle_seed": CIRCLE_SEED,
        "noun_probe": "default 100 bundled nouns, k=5, layers [0, n_layers-1], float32 scores",
        "dtype": "float32",
        "torch_threads": torch.get_num_threads(),
        "seconds_per_model": timings,
        "seconds_total": round(time.perf_counter() - t0, 1),
        "tlgeom_version": tlgeom.__version__,
        "torch_version": torch.__version__,
        "transformer_lens_version": version("transformer-lens"),
        "python_version": platform.python_version(),
        "n_facts": len(frame),
    }
    (RESULTS / "facts.json").write_text(json.dumps(settings, indent=2) + "\n")
    print(f"wrote {len(frame)} facts to {RESULTS / 'facts.csv'} in {settings['seconds_total']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
