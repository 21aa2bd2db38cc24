"""Report sections behind the ``tlgeom`` command line, and a self-contained HTML report.

A section is (title, a :class:`~tlgeom._result.Result`, what it means, what would count as
evidence against the paper). :func:`result_section` is the one generic step: it calls the
result's ``save()`` (PNG + CSV + JSON), and takes its ``summary()`` and ``headline()``; the section
functions below only run an analysis and supply the words. :func:`write_html` assembles sections
into one ``report.html`` with every figure embedded as a ``data:`` URI (no network, no
neighbouring files needed to view it) and :func:`write_json` writes ``results.json``. Output
directories are staged and guarded by a manifest (:mod:`tlgeom._output`).

Nothing here is paper-exact: thresholds and null models are tlgeom's documented defaults.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import math
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlgeom._errors import bad_arg
from tlgeom._output import MANIFEST, commit_output, discard, read_manifest, stage_output
from tlgeom._result import Result, jsonable

__all__ = [
    "MANIFEST",
    "Section",
    "bundled_pair",
    "commit_output",
    "curvature_section",
    "deflection_section",
    "discard",
    "environment",
    "landscape_section",
    "output_dir",
    "read_manifest",
    "result_section",
    "sphere_section",
    "stage_output",
    "verdict_line",
    "write_html",
    "write_json",
]


@dataclass
class Section:
    """One analysis of a report.

    Attributes:
        key: file stem and anchor (``"landscape"``, ``"curvature_test"``, …).
        title: heading. summary: plain-text result (what the command prints).
        meaning: what the numbers mean; against: what would count as evidence against the paper.
        figures: PNG paths. tables: CSV paths. results: headline numbers (JSON-able).
        seconds: wall time of the analysis. files: other files written (each result's JSON).
    """

    key: str
    title: str
    summary: str
    meaning: str
    against: str
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    seconds: float = 0.0
    files: list[Path] = field(default_factory=list)

    def add(self, out: Path, stem: str, figure: Any, frame: Any = None, dpi: int = 110) -> dict | None:
        """Save a result under ``out/stem.*`` and list its files.

        ``add(out, stem, result)`` with a :class:`~tlgeom._result.Result`: its ``save()`` (PNG, CSV,
        JSON); returns its headline. ``add(out, stem, figure, frame)``: the figure as PNG and the
        frame as CSV (for results that do not follow the protocol yet); returns None.
        """
        if frame is None and isinstance(figure, Result):
            paths = figure.save(out, stem, dpi=dpi)
            self.figures.append(paths["png"])
            self.tables.append(paths["csv"])
            self.files.append(paths["json"])
            return figure.headline()
        self.figures.append(_save(figure, out / f"{stem}.png", dpi=dpi))
        self.tables.append(_csv(frame, out / f"{stem}.csv"))
        return None


def _save(fig_or_ax: Any, path: Path, dpi: int = 110) -> Path:
    import matplotlib.pyplot as plt

    if isinstance(fig_or_ax, (list, tuple)) or hasattr(fig_or_ax, "flat"):  # an array of axes: any one
        fig_or_ax = next(iter(getattr(fig_or_ax, "flat", fig_or_ax)))
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def _csv(frame: Any, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def output_dir(out: Any) -> Path:
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise bad_arg("out", out, "a directory path")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise bad_arg("out", str(out), "a directory (this path is a file)")
    path.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------------------
# Sections


def result_section(
    key: str,
    title: str,
    result: Result,
    out: Any,
    *,
    meaning: str,
    against: str,
    seconds: float = 0.0,
    dpi: int = 110,
) -> Section:
    """The one generic section: ``result.save(out, key)`` writes ``key.png/.csv/.json``; the
    section's summary is ``result.summary()`` and its results ``result.headline()``."""
    if not isinstance(result, Result):
        raise bad_arg("result", type(result).__name__, "a tlgeom Result (summary, to_frame, headline, plot)")
    out = output_dir(out)
    t0 = time.perf_counter()
    sec = Section(key, title, result.summary(), meaning=meaning, against=against)
    sec.results = sec.add(out, key, result, dpi=dpi) or {}
    sec.seconds = seconds + (time.perf_counter() - t0)
    return sec


def landscape_section(model: Any, text: str, out: Any, *, space: str = "raw", view: str = "heatmap") -> Section:
    """Curvature landscape (tokens × layer vertices) of ``text`` from one streamed pass; ``view="pca"``
    draws the PCA-plane view instead (one more recorded pass)."""
    from tlgeom.experiments.landscape import curvature_landscape

    t0 = time.perf_counter()
    land = curvature_landscape(model, text, space=space, view=view)
    d = int(model.cfg.d_model)
    return result_section(
        "landscape",
        "Curvature landscape",
        land,
        out,
        dpi=120,
        seconds=time.perf_counter() - t0,
        meaning=(
            "Each cell is the turning angle between a token's layer step into a vertex and the step out of it: "
            "0° = straight on, 90° = orthogonal, 180° = reversal. Length-to-chord is path length / straight-line "
            "distance from the embedding to the last layer (1 = straight). Independent random directions in "
            f"R^{d} would turn by about 90°, so the landscape alone does not show 'bending': see the null-model test."
        ),
        against=(
            "The landscape is descriptive. It speaks against the curved-spacetime reading only together with the "
            "null-model test: a landscape indistinguishable from random-direction walks has no structured curvature."
        ),
    )


def verdict_line(report: Any) -> str:
    """One line from ``report.tests()``: which (null, statistic) tests reject after the correction."""
    t = report.tests()
    tested = t[t.informative]
    rej = tested[tested.reject]
    m = len(tested)
    names = lambda rows: ", ".join(f"{r.null}·{r.statistic}" for r in rows.itertuples())
    line = (
        f"curvature verdict (α = {report.alpha}, {report.correction} over {m} tests, {report.n_texts} text(s)): "
        f"rejected {len(rej)}/{m}" + (f" ({names(rej)})" if len(rej) else "") + "."
    )
    if len(t) > m:
        line += (
            f" {len(t) - m} comparison(s) could not reject at any data (simulations, texts or thresholds too few:"
            " see their notes) and are not counted as evidence either way."
        )
    against = t[t["against"].astype(bool)] if "against" in t.columns else t.iloc[:0]
    if len(against):
        line += f" Evidence against the claim (significant on the opposite side): {names(against)}."
    if report.n_texts == 1:
        line += " Caution: one text, so inference is within that text only."
    return line


def _sentences(text: str) -> list[str]:
    """``text`` split after . ! ? (sentences of at least 3 words), else ``[text]``."""
    import re

    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+", text.strip())]
    parts = [p for p in parts if len(p.split()) >= 3]
    return parts if len(parts) >= 2 else [text]


def curvature_section(
    model: Any,
    text: str | None,
    out: Any,
    *,
    n_sims: int = 999,
    seed: int = 0,
    space: str = "raw",
    texts: Any = None,
    progress: bool = False,
) -> Section:
    """Text-level curvature tests against the joint nulls and the untrained model; each sentence of
    ``text`` is one text (the unit of inference), or each of ``texts`` when given (the commands pass
    the bundled :data:`tlgeom.data.SENTENCES` when the user gave no text)."""
    from tlgeom.experiments.curvature import curvature_test

    out = output_dir(out)
    t0 = time.perf_counter()
    if texts is None:
        if text is None:
            raise bad_arg("text", None, "a text, or texts=[...]")
        texts = _sentences(text)
    texts = list(texts)
    report = curvature_test(model, texts, n_sims=n_sims, seed=seed, space=space, progress=progress)
    verdict = verdict_line(report)
    sec = Section(
        "curvature_test",
        "Curvature against null models",
        verdict + "\n\n" + report.summary(),
        meaning=(
            f"Each of the {len(texts)} sentence(s) is one unit: per sentence, the fraction of sharp+flat turns (beyond "
            "each null's own 2.5 %/97.5 % angle quantiles), the mean turning angle, the mean |θ − 90°| and the mean "
            "log length-to-chord are compared with that sentence's own simulations under joint nulls (one random "
            "rotation or layer permutation per sentence, shared by its tokens, which keeps their dependence) and "
            "with the same sentence through the re-initialised architecture (paired, sign-flip test across "
            f"sentences). p-values are exact Monte-Carlo p-values ({n_sims} simulations), adjusted with "
            f"{report.correction} across the table; effects come with a bootstrap CI over sentences."
        ),
        against=(
            "Evidence against 'curved spacetime': no rejected test against the rotation, shuffle and untrained "
            "nulls, or effects whose CIs straddle 0; an LTC that is not longer than the nulls says the paths are "
            "not more winding than chance."
        ),
    )
    sec.results = sec.add(out, "curvature_test", report) or {}
    sec.results.update({"verdict": verdict, "verdicts": report.verdicts(), "n_sims": n_sims, "seed": seed})
    sec.seconds = time.perf_counter() - t0
    return sec


def sphere_section(model: Any, text: str, out: Any) -> Section:
    """Traveling Words: how exactly normalised states lie on the √d hypersphere, layer by layer."""
    from tlgeom.experiments.sphere import sphere_report

    t0 = time.perf_counter()
    rep = sphere_report(model, text)
    return result_section(
        "sphere",
        "The normalisation hypersphere (Traveling Words)",
        rep,
        out,
        seconds=time.perf_counter() - t0,
        meaning=(
            "Every LayerNorm/RMSNorm output before its affine part should have norm √d (up to ε, corrected "
            "exactly); LayerNorm outputs also lie on the hyperplane orthogonal to the all-ones vector. γ and β "
            "then stretch and shift the sphere into an ellipsoid. The raw residual norm entering each norm shows "
            "how much the stream grows with depth."
        ),
        against=(
            "Normalised states off the √d sphere beyond float rounding (after the ε correction) would contradict "
            "the hypersphere picture; a γ/β ellipsoid with extreme axis ratios weakens the 'sphere' reading of what "
            "the next weights see."
        ),
    )


def bundled_pair(index: int = 0):
    """The ``index``-th bundled homonym minimal pair (:func:`tlgeom.eclipse.minimal_pairs`)."""
    from tlgeom.experiments.eclipse import minimal_pairs

    pairs = minimal_pairs("homonym")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(pairs):
        raise bad_arg("pair", index, f"an index in [0, {len(pairs)}) of the bundled homonym pairs")
    return pairs[index]


def deflection_section(
    model: Any, edit: Any, out: Any, *, controls: int = 19, seed: int = 0, patch: bool = True, progress: bool = True
) -> Section:
    """Eclipse experiment on one context edit: deflection vs matched control edits, then patching attribution.

    The same edit, ``controls`` and ``seed`` give the same controls and onset as
    :func:`tlgeom.experiments.eclipse.deflection` on the same texts.
    """
    from tlgeom.experiments.eclipse import ContextEdit, deflection, sense_contexts
    from tlgeom.experiments.patching import patch_attribution

    if not isinstance(edit, ContextEdit):
        raise bad_arg("edit", edit, "a tlgeom.ContextEdit")
    out = output_dir(out)
    t0 = time.perf_counter()
    prototypes = None
    clean_sense, edited_sense = edit.info.get("clean_sense"), edit.info.get("edited_sense")
    contexts = sense_contexts().get(edit.target) if isinstance(edit.target, str) else None
    if contexts and clean_sense in contexts and edited_sense in contexts:
        prototypes = (contexts[clean_sense], contexts[edited_sense])
    d = deflection(model, edit, controls=controls, seed=seed, prototypes=prototypes)
    res = d.headline()
    lines = d.summary().splitlines()
    sec = Section(
        "deflection",
        "Eclipse experiment: deflection by a context edit",
        "\n".join(lines),
        meaning=(
            "The target word's trajectory is recorded in the clean and in the edited text and compared point by "
            "point (distance, angle). Control edits are edits of the same kind at the same place with words "
            "matched in part of speech (in context), frequency and length; the onset is the first layer where the "
            "edit deflects the target more than its controls, with the error controlled across all layers "
            "(rank p-values, max-statistic correction; none when no layer is significant). "
            "'Toward' is the fraction of the way the edit moved the target toward the other sense's prototype "
            "(mean state over bundled contexts of that sense). Patching writes the clean activation at one "
            "(layer, position) into the edited run and measures how much of the final deflection it restores."
        ),
        against=(
            "Evidence against the eclipse reading: meaning-changing edits that deflect no more than matched "
            "control edits, or no movement toward the other sense; over many pairs use "
            "tlgeom.meaning_vs_control (one pair is an illustration, not a test)."
        ),
        results=res,
    )
    sec.add(out, "deflection", d.plot(), d.to_frame())
    if patch:
        att = patch_attribution(model, edit, progress=progress)
        v = att.values
        import torch

        best = torch.nan_to_num(v, nan=-math.inf).flatten().argmax()
        layer, pos = divmod(int(best), v.shape[1])
        res["patching"] = {
            "component": att.component,
            "n_cells": int(v.numel()),
            "n_run": att.n_run,
            "n_batches": att.n_batches,
            "best_layer": att.layers[layer],
            "best_pos": pos,
            "best_token": att.str_tokens[pos],
            "best_restored": float(v[layer, pos]),
        }
        p = res["patching"]
        sec.summary += (
            f"\npatching ({att.component}): {p['n_run']} of {p['n_cells']} cells run in {p['n_batches']} "
            f"batched pass(es); largest restored fraction {p['best_restored']:.2f} at layer "
            f"{p['best_layer']}, token {p['best_token']!r} (pos {pos})"
        )
        sec.add(out, "patching", att.plot(), att.to_frame())
    sec.seconds = time.perf_counter() - t0
    return sec


# ---------------------------------------------------------------------------------------------
# Output: results.json and a self-contained report.html


#: Plain JSON values (tensors/numpy to lists or floats, NaN to null, ±inf to "inf"/"-inf"): the one
#: converter of :mod:`tlgeom._result`.
_jsonable = jsonable


def environment(model: Any = None, model_name: str | None = None) -> dict:
    """Versions, model config and time: what a reader needs to reproduce a result."""
    import importlib.metadata as md

    from tlgeom import __version__

    def version(pkg: str) -> str | None:
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    env: dict[str, Any] = {
        "tlgeom": __version__,
        "transformer_lens": version("transformer-lens"),
        "torch": _torch_version(),
        "python": platform.python_version(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if model is not None:
        cfg = model.cfg
        env["model"] = {
            "name": model_name,
            "class": type(model).__name__,
            "n_layers": int(cfg.n_layers),
            "d_model": int(cfg.d_model),
            "n_heads": int(getattr(cfg, "n_heads", 0) or 0),
            "device": str(next(model.parameters()).device),
        }
    return env


def write_json(sections: list[Section], meta: dict, path: Any) -> Path:
    """``results.json``: meta plus, per section, its headline results, files and time (strict JSON:
    no NaN or infinity)."""
    path = Path(path)
    doc = {
        "meta": meta,
        "sections": {
            s.key: {
                "title": s.title,
                "summary": s.summary,
                "results": s.results,
                "seconds": round(s.seconds, 3),
                "figures": [p.name for p in s.figures],
                "tables": [p.name for p in s.tables],
                "files": [p.name for p in s.files],
            }
            for s in sections
        },
    }
    path.write_text(json.dumps(jsonable(doc), indent=2, ensure_ascii=False, allow_nan=False), encoding="utf-8")
    return path


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
pre{background:#f6f8fa;padding:.8em;overflow-x:auto;font-size:.85em;white-space:pre-wrap}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.5em 0}
.meta{color:#555;font-size:.9em} .against{background:#fff6e5;border-left:4px solid #f0a020;padding:.5em .8em}
.verdict{font-weight:600;background:#eef6ff;border-left:4px solid #3080e0;padding:.5em .8em}
table{border-collapse:collapse;font-size:.8em} td,th{border:1px solid #ddd;padding:2px 6px}
nav a{margin-right:1em}
"""


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'


def write_html(
    sections: list[Section], meta: dict, path: Any, *, title: str = "tlgeom report", verdict: str | None = None
) -> Path:
    """Write one self-contained HTML file: every figure inline (``data:`` URIs), no scripts, no network.

    Args:
        sections: the report's :class:`Section` s, in order.
        meta: :func:`environment` plus the run's settings (text, seed, …), shown at the top.
        path: the file to write. title: page title. verdict: a line shown prominently at the top.
    """
    path = Path(path)
    m = meta.get("model", {})
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no favicon request
        f"<title>{esc(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
    ]
    settings = {k: v for k, v in meta.items() if k not in ("model", "text")}
    line = ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None)
    if m:
        parts.append(
            f'<p class="meta">model <b>{esc(str(m.get("name")))}</b> ({esc(m.get("class", ""))}, '
            f"{m.get('n_layers')} layers, d_model {m.get('d_model')}, {esc(m.get('device', ''))}); "
            f"{esc(line)}</p>"
        )
    else:
        parts.append(f'<p class="meta">{esc(line)}</p>')
    parts.append(
        "<p class=\"meta\">Thresholds and null models are tlgeom's documented defaults, not any paper's "
        "exact protocol. CSV and JSON files with every number sit next to this file.</p>"
    )
    if verdict:
        parts.append(f'<p class="verdict">{esc(verdict)}</p>')
    parts.append("<nav>" + "".join(f'<a href="#{s.key}">{esc(s.title)}</a>' for s in sections) + "</nav>")
    if meta.get("text"):
        text = str(meta["text"])
        parts.append(
            f"<details><summary>Text analysed ({len(text)} characters)</summary><pre>{esc(text)}</pre></details>"
        )
    for s in sections:
        parts.append(f'<section id="{esc(s.key)}"><h2>{esc(s.title)}</h2>')
        parts.append(f"<pre>{esc(s.summary)}</pre>")
        parts.extend(_img(p, f"{s.title}: {p.stem}") for p in s.figures)
        parts.append(f"<p><b>What it means.</b> {esc(s.meaning)}</p>")
        parts.append(f'<p class="against"><b>What would count as evidence against the paper.</b> {esc(s.against)}</p>')
        if s.tables:
            links = ", ".join(f'<a href="{esc(p.name)}">{esc(p.name)}</a>' for p in s.tables + s.files)
            parts.append(f'<p class="meta">data: {links} · {s.seconds:.1f} s</p>')
        parts.append("</section>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _torch_version() -> str:
    import torch

    return str(torch.__version__)
