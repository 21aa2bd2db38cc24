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
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tlgeom._args import CONTROLS
from tlgeom._errors import bad_arg
from tlgeom._output import MANIFEST, commit_output, discard, read_manifest, stage_output
from tlgeom._result import Result, jsonable

__all__ = [
    "MANIFEST",
    "Section",
    "analysis_section",
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
    "sentences",
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


def analysis_section(analysis: Any, model: Any, inputs: Any, out: Any, **values: Any) -> Section:
    """Run one declared analysis (:data:`tlgeom.experiments.analyses.ANALYSES`) and make its section.

    ``analysis``: an :class:`~tlgeom._declare.Analysis` or its key; ``inputs``: what it analyses (a text, a
    list of texts, a :class:`~tlgeom.ContextEdit`); ``values``: its options and settings by name (others are
    ignored). The result's ``save()`` writes ``<key>.png/.csv/.json`` into ``out``; the section's summary is
    the analysis's verdict line (where it declares one) and the result's ``summary()``; its results the
    result's ``headline()`` (and the verdict).
    """
    from tlgeom.experiments.analyses import analysis as declared

    a = declared(analysis) if isinstance(analysis, str) else analysis
    out = output_dir(out)
    t0 = time.perf_counter()
    result = a.execute(model, inputs, **values)
    seconds = time.perf_counter() - t0
    n_units = len(inputs) if isinstance(inputs, (list, tuple)) else 1
    meaning, against = a.words(result, d_model=int(model.cfg.d_model), n_units=n_units)
    sec = result_section(a.key, a.title, result, out, meaning=meaning, against=against, seconds=seconds)
    if a.verdict is not None:
        verdict = getattr(result, a.verdict)()
        sec.summary = verdict + "\n\n" + sec.summary
        sec.results["verdict"] = verdict
    return sec


def landscape_section(model: Any, text: str, out: Any, *, space: str = "raw", view: str = "heatmap") -> Section:
    """The ``landscape`` analysis of ``text`` as a section (:func:`analysis_section`)."""
    return analysis_section("landscape", model, text, out, space=space, view=view)


def verdict_line(report: Any) -> str:
    """One line from ``report.tests()``: which (null, statistic) tests reject after the correction
    (:func:`tlgeom.experiments.curvature.verdict_line`)."""
    from tlgeom.experiments.curvature import verdict_line as line

    return line(report)


def sentences(text: str) -> list[str]:
    """``text`` split after . ! ? (sentences of at least 3 words), else ``[text]``: the units of the
    curvature tests of a text."""
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
    """The ``curvature_test`` analysis as a section: each sentence of ``text`` is one text (the unit of
    inference), or each of ``texts`` when given (the commands pass the bundled
    :data:`tlgeom.data.SENTENCES` when the user gave no text)."""
    if texts is None:
        if text is None:
            raise bad_arg("text", None, "a text, or texts=[...]")
        texts = sentences(text)
    return analysis_section(
        "curvature_test", model, list(texts), out, n_sims=n_sims, seed=seed, space=space, progress=progress
    )


def sphere_section(model: Any, text: str, out: Any) -> Section:
    """The ``sphere`` analysis (Traveling Words: normalised states on the √d hypersphere) as a section."""
    return analysis_section("sphere", model, text, out)


def bundled_pair(index: int = 0):
    """The ``index``-th bundled homonym minimal pair (:func:`tlgeom.experiments.eclipse.minimal_pairs`)."""
    from tlgeom.experiments.eclipse import minimal_pairs

    pairs = minimal_pairs("homonym")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(pairs):
        raise bad_arg("pair", index, f"an index in [0, {len(pairs)}) of the bundled homonym pairs")
    return pairs[index]


def deflection_section(
    model: Any,
    edit: Any,
    out: Any,
    *,
    controls: int = CONTROLS,
    seed: int = 0,
    patch: bool = True,
    progress: bool = True,
) -> Section:
    """The ``deflection`` analysis of one context edit as a section (the ``patching`` analysis is its own
    section: :func:`analysis_section` ``("patching", …)``; ``patch`` is kept for the old call and ignored).

    The same edit, ``controls`` and ``seed`` give the same controls and onset as
    :func:`tlgeom.experiments.eclipse.deflection` on the same texts.
    """
    from tlgeom.experiments.edits import ContextEdit

    if not isinstance(edit, ContextEdit):
        raise bad_arg("edit", edit, "a tlgeom.ContextEdit")
    return analysis_section("deflection", model, edit, out, controls=controls, seed=seed, progress=progress)


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
