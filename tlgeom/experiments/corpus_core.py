"""What the two corpus engines share (:func:`tlgeom.experiments.corpus.run_corpus` in this process, and
:mod:`tlgeom.experiments.corpus_ray` on Ray Data): windows and length-bucketed batches, the plan that turns
a batch into rows and sufficient statistics, the run folder (parts written atomically, resume, source and
settings checks), the merged statistics and the text-level tests from the rows. The engine itself is
documented in :mod:`tlgeom.experiments.corpus`."""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tlgeom._args import check_choice, check_int, check_points, check_seed, check_space
from tlgeom._args import generator as make_generator
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._output import probe_writable
from tlgeom._result import Result, jsonable, new_axes
from tlgeom.data.corpora import Document, text_id
from tlgeom.experiments.curvature import ALTERNATIVES, OPPOSITE, decide, table_row
from tlgeom.geometry.curvature import to_space
from tlgeom.models import _compat
from tlgeom.models.conventions import model_normalization
from tlgeom.models.load import model_label
from tlgeom.models.streaming import LengthToChord, StreamMetric, TurningAngles, stream_tokens
from tlgeom.stats.nulls import get_null, participation_ratio, stream_seed
from tlgeom.stats.pvalues import exchangeable_pvalue, min_pvalue_mc, tests_table

#: Statistics a streamed run can test (no pooled thresholds needed).
CORPUS_STATISTICS = ("mean_angle", "mean_abs_dev", "log_ltc")
#: Row column holding the observed value of each statistic.
OBSERVED_COLUMN = {"mean_angle": "mean_angle", "mean_abs_dev": "mean_abs_dev", "log_ltc": "mean_log_ltc"}
#: Fixed histogram bin edges of the turning angles (degrees): 180 bins of 1°.
HIST_EDGES = np.linspace(0.0, 180.0, 181)
UNITS = ("document", "window")
ENGINES = ("local", "ray")


# ---------------------------------------------------------------------------------------------
# Exact sums


def exact_sum(values: Any) -> Fraction:
    """The exact sum of float64 ``values`` (NaN left out), as a Fraction: order-independent.

    Each finite float64 is ``m · 2^e`` with an integer ``|m| < 2^53`` (:func:`numpy.frexp`); the
    mantissas of each exponent are summed as integers (in int64 chunks of ≤ 1024, which cannot
    overflow) and the groups combined exactly.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return Fraction(0)
    f, e = np.frexp(x)
    m = (f * 2.0**53).astype(np.int64)  # exact: f in [0.5, 1) has 53 significant bits
    e = e.astype(np.int64) - 53
    total = Fraction(0)
    for ex in np.unique(e):
        mm = m[e == ex]
        s = sum(int(mm[i : i + 1024].sum()) for i in range(0, mm.size, 1024))
        total += Fraction(s) * (Fraction(2) ** int(ex))
    return total


def _frac_json(x: Fraction) -> str:
    return f"{x.numerator}/{x.denominator}"


def _frac_load(s: str) -> Fraction:
    return Fraction(s)


# ---------------------------------------------------------------------------------------------
# Sufficient statistics


@dataclass
class CorpusStats:
    """Mergeable sufficient statistics of turning angles (degrees) and ``log LTC``.

    Attributes:
        n_windows, n_tokens: windows (rows) and tokens counted.
        count, sum, sumsq: per layer vertex, the number of defined angles, the exact sum of the
            angles and of their squares (float64 squares, summed exactly).
        hist: ``[vertex, 180]`` counts over the fixed 1° bins :data:`HIST_EDGES`.
        ltc_count, ltc_sum, ltc_sumsq: the same for ``log LTC`` over tokens.
    """

    n_windows: int
    n_tokens: int
    count: list[int]
    sum: list[Fraction]
    sumsq: list[Fraction]
    hist: list[list[int]]
    ltc_count: int
    ltc_sum: Fraction
    ltc_sumsq: Fraction

    @classmethod
    def empty(cls, n_vertices: int) -> CorpusStats:
        z = Fraction(0)
        return cls(
            0, 0, [0] * n_vertices, [z] * n_vertices, [z] * n_vertices, [[0] * 180 for _ in range(n_vertices)], 0, z, z
        )

    @classmethod
    def of(cls, angles_deg: list[np.ndarray], log_ltc: list[np.ndarray]) -> CorpusStats:
        """From each window's angles ``[pos, V]`` (degrees, NaN undefined) and ``log LTC`` ``[pos]``."""
        a = np.concatenate(angles_deg, axis=0)
        ll = np.concatenate(log_ltc)
        V = a.shape[1]
        ok = np.isfinite(a)
        hist = [np.histogram(a[ok[:, v], v], bins=HIST_EDGES)[0].astype(int).tolist() for v in range(V)]
        lok = ll[np.isfinite(ll)]
        return cls(
            n_windows=len(angles_deg),
            n_tokens=int(a.shape[0]),
            count=[int(ok[:, v].sum()) for v in range(V)],
            sum=[exact_sum(a[:, v]) for v in range(V)],
            sumsq=[exact_sum(a[:, v] * a[:, v]) for v in range(V)],
            hist=hist,
            ltc_count=int(lok.size),
            ltc_sum=exact_sum(lok),
            ltc_sumsq=exact_sum(lok * lok),
        )

    def __add__(self, other: CorpusStats) -> CorpusStats:
        if len(self.count) != len(other.count):
            raise bad_arg("stats", f"{len(other.count)} vertices", f"shards with {len(self.count)} layer vertices")
        return CorpusStats(
            self.n_windows + other.n_windows,
            self.n_tokens + other.n_tokens,
            [a + b for a, b in zip(self.count, other.count)],
            [a + b for a, b in zip(self.sum, other.sum)],
            [a + b for a, b in zip(self.sumsq, other.sumsq)],
            [[x + y for x, y in zip(a, b)] for a, b in zip(self.hist, other.hist)],
            self.ltc_count + other.ltc_count,
            self.ltc_sum + other.ltc_sum,
            self.ltc_sumsq + other.ltc_sumsq,
        )

    @property
    def mean(self) -> np.ndarray:
        """Mean angle per vertex (degrees): ``sum / count``."""
        return np.array([float(s / c) if c else math.nan for s, c in zip(self.sum, self.count)])

    @property
    def sd(self) -> np.ndarray:
        """SD per vertex (degrees, ``ddof=1``): ``sqrt((sumsq − sum²/n) / (n − 1))``, exact until the root."""
        return np.array(
            [
                math.sqrt(float((q - s * s / c) / (c - 1))) if c > 1 else math.nan
                for s, q, c in zip(self.sum, self.sumsq, self.count)
            ]
        )

    @property
    def mean_log_ltc(self) -> float:
        return float(self.ltc_sum / self.ltc_count) if self.ltc_count else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "n_windows": self.n_windows,
            "n_tokens": self.n_tokens,
            "count": self.count,
            "sum": [_frac_json(s) for s in self.sum],
            "sumsq": [_frac_json(s) for s in self.sumsq],
            "hist_edges_deg": [0.0, 180.0, 180],
            "hist": self.hist,
            "ltc_count": self.ltc_count,
            "ltc_sum": _frac_json(self.ltc_sum),
            "ltc_sumsq": _frac_json(self.ltc_sumsq),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CorpusStats:
        return cls(
            int(d["n_windows"]),
            int(d["n_tokens"]),
            [int(c) for c in d["count"]],
            [_frac_load(s) for s in d["sum"]],
            [_frac_load(s) for s in d["sumsq"]],
            [[int(x) for x in h] for h in d["hist"]],
            int(d["ltc_count"]),
            _frac_load(d["ltc_sum"]),
            _frac_load(d["ltc_sumsq"]),
        )


def merge_stats(paths: Iterable[str | os.PathLike]) -> CorpusStats:
    """Combine shard statistics (``out/stats/*.json``) exactly; the result does not depend on order.

    Raises:
        TlgeomError: no paths, an unreadable file, or shards with different numbers of vertices.
    """
    total: CorpusStats | None = None
    n = 0
    for p in paths:
        try:
            shard = CorpusStats.from_json(json.loads(Path(p).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise bad_arg("paths", str(p), f"a readable corpus stats JSON file ({type(exc).__name__})") from None
        total = shard if total is None else total + shard
        n += 1
    if total is None:
        raise bad_arg("paths", "no files", "at least one stats shard")
    return total


# ---------------------------------------------------------------------------------------------
# Metrics on the exact sphere (space="normalized"), as compare_to_nulls prepares states


def _on_sphere(x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """:func:`~tlgeom.geometry.curvature.to_space` ``"normalized"``: on the sphere of radius √d."""
    return to_space(x, "normalized", norm, eps)


class _SphereAngles(TurningAngles):
    name = "turning_angles"

    def __init__(self, norm: str, eps: float):
        super().__init__()
        self.norm, self.eps = norm, eps

    def update(self, index: int, x: torch.Tensor) -> None:
        super().update(index, _on_sphere(x, self.norm, self.eps))


class _SphereLTC(LengthToChord):
    name = "length_to_chord"

    def __init__(self, norm: str, eps: float):
        super().__init__()
        self.norm, self.eps = norm, eps

    def update(self, index: int, x: torch.Tensor) -> None:
        super().update(index, _on_sphere(x, self.norm, self.eps))


class _BatchStates(StreamMetric):
    """Keeps one batch's states ``[batch, pos, point, d]`` (only with nulls; one batch at a time)."""

    name = "states"
    min_points = 3

    def __init__(self, norm: str | None, eps: float):
        super().__init__()
        self.norm, self.eps = norm, eps

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.values: list[torch.Tensor] = []

    def update(self, index: int, x: torch.Tensor) -> None:
        self.values.append(_on_sphere(x, self.norm, self.eps) if self.norm is not None else x)

    def result(self) -> torch.Tensor:
        self._require_run()
        return torch.stack(self.values, dim=2)


# ---------------------------------------------------------------------------------------------
# Documents → windows


@dataclass(frozen=True)
class Window:
    id: str
    doc_id: str
    index: int
    tokens: torch.Tensor  # [pos] long


def as_document(doc: Any, i: int) -> Document:
    if isinstance(doc, Document):
        return doc
    if isinstance(doc, str):
        if not doc.strip():
            raise bad_arg(f"documents[{i}]", doc, "a non-empty text")
        return Document(text_id(doc), doc)
    raise bad_arg(f"documents[{i}]", type(doc).__name__, "a string or a tlgeom.data.corpora.Document")


def _doc_tokens(model: Any, text: str) -> torch.Tensor:
    """The whole document's token ids ``[pos]`` (no truncation)."""
    try:
        toks = model.to_tokens(text, truncate=False)
    except TypeError:  # an API without the truncate flag
        toks = model.to_tokens(text)
    if isinstance(toks, tuple):  # HookedEncoder: (tokens, token_type_ids, attention_mask)
        toks = toks[0]
    return toks[0].long().cpu()


def _special_ids(model: Any) -> set[int]:
    tok = getattr(model, "tokenizer", None)
    return {int(i) for i in (getattr(tok, "all_special_ids", None) or [])}


def split_windows(tokens: torch.Tensor, width: int, special: set[int]) -> list[torch.Tensor]:
    """Cut ``tokens`` into windows of at most ``width``: a leading/trailing special token (BOS, [CLS],
    [SEP]) is repeated in every window, the tokens in between are cut into consecutive chunks."""
    if tokens.numel() <= width:
        return [tokens]
    head = tokens[:1] if int(tokens[0]) in special else tokens[:0]
    tail = tokens[-1:] if int(tokens[-1]) in special else tokens[:0]
    body = tokens[head.numel() : tokens.numel() - tail.numel()]
    step = width - head.numel() - tail.numel()
    return [torch.cat([head, body[i : i + step], tail]) for i in range(0, body.numel(), step)]


def iter_windows(model: Any, documents: Iterable[Any], width: int) -> Iterator[Window]:
    """The corpus's windows, read lazily. A document id met again (a repeated text without an id has
    the same hash id) gets a distinct id by its position, ``<id>@<index>`` (stable across resumes of
    the same source), and a warning at the end counts them."""
    special = _special_ids(model)
    seen: set[str] = set()
    empty = True
    repeated = 0
    for i, raw in enumerate(documents):
        doc = as_document(raw, i)
        if doc.id in seen:
            repeated += 1
            doc = Document(f"{doc.id}@{i}", doc.text)
        seen.add(doc.id)
        empty = False
        parts = split_windows(_doc_tokens(model, doc.text), width, special)
        for k, toks in enumerate(parts):
            yield Window(doc.id if len(parts) == 1 else f"{doc.id}#w{k}", doc.id, k, toks)
    if empty:
        raise bad_arg("documents", "an empty corpus", "at least one document")
    if repeated:
        warnings.warn(
            f"{repeated} document(s) repeated an earlier document's id (a repeated text without an id has the "
            "same hash id): each was kept under a distinct id by its position, '<id>@<index>'",
            stacklevel=2,
        )


def bucket_batches(windows: Iterator[Window], batch_tokens: int, lookahead: int) -> Iterator[list[Window]]:
    """Length-bucketed batches: sort each buffer of ``lookahead`` windows by length and pack greedily
    so that rows × longest row ≤ ``batch_tokens`` (a single longer window is a batch of its own)."""
    while True:
        buf = [w for _, w in zip(range(lookahead), windows)]
        if not buf:
            return
        buf.sort(key=lambda w: (w.tokens.numel(), w.id))
        batch: list[Window] = []
        for w in buf:
            if batch and (len(batch) + 1) * w.tokens.numel() > batch_tokens:
                yield batch
                batch = []
            batch.append(w)
        if batch:
            yield batch


# ---------------------------------------------------------------------------------------------
# Output folder


def parquet_modules():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # pragma: no cover - pyarrow is in the corpus extra
        raise TlgeomError("run_corpus writes Parquet and needs pyarrow: pip install 'tlgeom[corpus]'") from exc
    return pa, pq


def part_files(out: Path) -> list[Path]:
    return sorted((out / "rows").glob("part-*.parquet"))


def read_rows(out: str | os.PathLike) -> Any:
    """All rows written under ``out/rows/`` as one DataFrame (parts in name order, i.e. batch order)."""
    import pandas as pd

    _, pq = parquet_modules()
    parts = part_files(Path(out))
    if not parts:
        raise bad_arg("out", str(out), "a corpus run folder with rows (out/rows/part-*.parquet)")
    return pd.concat([pq.read_table(p).to_pandas() for p in parts], ignore_index=True)


def done_ids(out: Path) -> set[str]:
    _, pq = parquet_modules()
    done: set[str] = set()
    for p in part_files(out):
        done.update(pq.read_table(p, columns=["id"]).column("id").to_pylist())
    return done


def clean_interrupted(out: Path) -> None:
    """Delete temp files and stats shards whose Parquet part never landed (an interrupted batch)."""
    for d in (out / "rows", out / "stats"):
        for tmp in d.glob(".*.tmp"):
            tmp.unlink()
    parts = {p.stem for p in part_files(out)}
    for s in (out / "stats").glob("part-*.json"):
        if s.stem not in parts:
            s.unlink()


def prepare_out(out: Any, settings: dict[str, Any], overwrite: bool = False) -> tuple[Path, list[Path]]:
    """The run folder, checked (a file, a folder of another run or of other files, an unwritable place:
    a TlgeomError naming ``out``) and prepared; returns it and what this call created (for cleanup)."""
    precheck_out(out, "out", overwrite)
    path = Path(out)
    run_json = path / "run.json"
    if run_json.is_file():
        old = json.loads(run_json.read_text())
        diff = {k: (old.get(k), v) for k, v in settings.items() if old.get(k) != v}
        if diff:
            shown = "; ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            raise bad_arg("out", str(out), f"a new folder, or the settings of the run already there ({shown})")
    created = [p for p in (path, path / "rows", path / "stats", run_json) if not p.exists()]
    try:
        (path / "rows").mkdir(parents=True, exist_ok=True)
        (path / "stats").mkdir(exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError(13, "Permission denied")
        if not run_json.is_file():
            tmp = path / ".run.json.tmp"
            tmp.write_text(json.dumps(settings, indent=2) + "\n")
            tmp.replace(run_json)
    except OSError as exc:
        remove_created(created)
        raise bad_arg("out", str(out), f"a writable directory ({exc.strerror or type(exc).__name__})") from None
    return path, created


def clear_run(out: Any) -> None:
    """Remove an earlier run's own files from ``out`` (``run.json``, ``rows/``, ``stats/``): ``tlgeom corpus
    --overwrite``. Nothing else in the folder is touched; a folder without ``run.json`` is left as it is."""
    import shutil

    path = Path(out)
    if not (path / "run.json").is_file():
        return
    for sub in ("rows", "stats"):
        shutil.rmtree(path / sub, ignore_errors=True)
    (path / "run.json").unlink()


def precheck_out(out: Any, arg: str = "out", overwrite: bool = False) -> None:
    """What can be checked of a run folder before a model loads (``tlgeom corpus``; :func:`prepare_out`
    starts with it): not a file, not a
    folder of other files, and a place where a folder can be made (tried with an empty temporary folder
    beside it, removed at once). Nothing is left behind."""

    if not isinstance(out, (str, os.PathLike)) or not str(out).strip():
        raise bad_arg(arg, out, "a directory path")
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise bad_arg(arg, str(out), "a directory (this path is a file)")
    if not overwrite and path.is_dir() and not (path / "run.json").is_file() and any(path.iterdir()):
        again = "--overwrite" if arg.startswith("--") else "overwrite=True"
        raise bad_arg(
            arg, str(out), f"an empty or new directory, or the folder of an earlier run_corpus (run.json); or {again}"
        )
    probe_writable(path if path.is_dir() else path.absolute().parent, arg, shown=out)


def remove_created(created: list[Path]) -> None:
    """Undo a start that wrote no batch: remove what :func:`prepare_out` created, deepest first."""
    for p in reversed(created):
        try:
            if p.is_dir():
                p.rmdir()  # only if empty: a folder holding anything else is left alone
            elif p.exists():
                p.unlink()
        except OSError:
            pass


def _forward(model: Any, batch: list[Window], info: Any, points: str, metrics: list[StreamMetric]) -> torch.Tensor:
    """Right-padded tokens of the batch through the model with ``metrics`` streaming; returns the mask."""
    pos = max(w.tokens.numel() for w in batch)
    pad_id = getattr(getattr(model, "tokenizer", None), "pad_token_id", None) or 0
    toks = torch.full((len(batch), pos), int(pad_id), dtype=torch.long)
    mask = torch.zeros((len(batch), pos), dtype=torch.bool)
    for i, w in enumerate(batch):
        toks[i, : w.tokens.numel()] = w.tokens
        mask[i, : w.tokens.numel()] = True
    stream_tokens(model, toks, mask, metrics, points, info)
    return mask


def _sim_statistics(null: Any, x: torch.Tensor, n_sims: int, seed: int | None, wid: str, options: dict) -> dict:
    """The window's simulated statistics ``{stat: [n_sims]}`` under ``null`` (own seeded stream)."""
    gen = make_generator(stream_seed(seed, f"{null.name}/{wid}"), x.device)
    opts = dict(options)
    if null.name == "dimension_token":
        opts["d_eff"] = max(2, round(participation_ratio(x)))
    dr = null.simulate(x, n_sims, gen, **opts)
    deg = torch.rad2deg(dr.angles)  # [S, pos, V]
    out = {}
    if "mean_angle" in null.tests:
        out["mean_angle"] = deg.nanmean((-2, -1))
    if "mean_abs_dev" in null.tests:
        out["mean_abs_dev"] = (deg - 90).abs().nanmean((-2, -1))
    if "log_ltc" in null.tests and dr.ltc is not None:
        out["log_ltc"] = torch.log(dr.ltc).nanmean(-1)
    return out


def write_part(out: Path, name: str, table: Any, stats: CorpusStats) -> None:
    """Stats shard first, then the Parquet part (the commit point), each via temp file + rename."""
    _, pq = parquet_modules()
    st_tmp = out / "stats" / f".{name}.json.tmp"
    st_tmp.write_text(json.dumps(stats.to_json()) + "\n")
    st_tmp.replace(out / "stats" / f"{name}.json")
    tmp = out / "rows" / f".{name}.parquet.tmp"
    pq.write_table(table, tmp)
    tmp.replace(out / "rows" / f"{name}.parquet")


# ---------------------------------------------------------------------------------------------
# Result


@dataclass
class CorpusRun(Result):
    """What :func:`run_corpus` did and where: the rows are on disk (``out/rows``), read on demand.

    Attributes:
        out: the run folder.
        settings: ``run.json``.
        stats: merged statistics of every shard (this run's and earlier ones').
        n_windows, n_tokens: windows and tokens processed by *this* call (skipped ones excluded).
        n_skipped: windows skipped because an earlier run wrote them.
        seconds: wall time of this call's batches (tokenization, forward, metrics, writing).
        vertex_labels: names of the layer vertices.
    """

    out: Path
    settings: dict[str, Any]
    stats: CorpusStats
    n_windows: int
    n_tokens: int
    n_skipped: int
    seconds: float
    vertex_labels: list[str] = field(default_factory=list)
    result_name = "corpus"

    @property
    def tokens_per_second(self) -> float:
        return self.n_tokens / self.seconds if self.seconds > 0 else math.nan

    def to_frame(self) -> Any:
        """The rows (one per window) of every Parquet part."""
        return read_rows(self.out)

    def tests(self, **kwargs: Any) -> Any:
        """:func:`tests_from_rows` on this run's folder."""
        return tests_from_rows(self.out, **kwargs)

    def headline(self) -> dict[str, Any]:
        return jsonable(
            {
                "model": self.settings.get("model"),
                "n_windows_total": self.stats.n_windows,
                "n_tokens_total": self.stats.n_tokens,
                "n_windows_run": self.n_windows,
                "n_tokens_run": self.n_tokens,
                "n_skipped": self.n_skipped,
                "seconds": self.seconds,
                "tokens_per_second": self.tokens_per_second,
                "mean_angle_per_vertex": self.stats.mean,
                "sd_angle_per_vertex": self.stats.sd,
                "mean_log_ltc": self.stats.mean_log_ltc,
            }
        )

    def summary(self) -> str:
        m = self.stats.mean
        lines = [
            f"corpus run ({self.settings.get('model')}, points={self.settings.get('points')}, "
            f"space={self.settings.get('space')}) in {self.out}: {self.stats.n_windows} windows, "
            f"{self.stats.n_tokens} tokens in total.",
            f"This call: {self.n_windows} windows, {self.n_tokens} tokens in {self.seconds:.1f} s "
            f"({self.tokens_per_second:.0f} tokens/s, {self.n_windows / max(self.seconds, 1e-9):.1f} windows/s); "
            f"{self.n_skipped} windows already written were skipped.",
        ]
        if len(m):
            lines.append(
                f"Mean turning angle per layer vertex: {np.nanmin(m):.1f}°–{np.nanmax(m):.1f}° "
                f"(first {m[0]:.1f}°, last {m[-1]:.1f}°); mean log LTC {self.stats.mean_log_ltc:.3f}."
            )
        return "\n".join(lines)

    def plot(self, ax: Any = None) -> Any:
        """Mean turning angle per layer vertex with a ±1 SD band (over all tokens), 90° marked."""
        fig, ax = new_axes(ax)
        m, sd = self.stats.mean, self.stats.sd
        x = np.arange(len(m))
        ax.plot(x, m, marker="o", label="mean angle")
        ax.fill_between(x, m - sd, m + sd, alpha=0.25, label="± 1 SD over tokens")
        ax.axhline(90, color="grey", lw=0.8, ls="--")
        ax.set_xticks(x, self.vertex_labels or [f"v{i + 1}" for i in x], rotation=90 if len(x) > 12 else 0)
        ax.set_xlabel("layer vertex")
        ax.set_ylabel("turning angle (degrees)")
        ax.set_title(f"{self.settings.get('model')}: {self.stats.n_windows} windows, {self.stats.n_tokens} tokens")
        ax.legend(loc="best", fontsize=8)
        return fig


# ---------------------------------------------------------------------------------------------
# run_corpus


def _check_nulls(nulls: Any, space: str, n_sims: int) -> tuple[Any, ...]:
    if nulls is None or n_sims == 0:
        return ()
    if isinstance(nulls, str):
        nulls = (nulls,)
    if not isinstance(nulls, (list, tuple)) or not nulls:
        raise bad_arg("nulls", nulls, "None or a non-empty sequence of null names")
    out = []
    for n in nulls:
        null = get_null(n)
        if null.paired:
            raise bad_arg(
                "nulls", n, "a simulated null (a model-based null needs a second model: tlgeom.curvature_test)"
            )
        if space not in null.spaces:
            raise bad_arg("nulls", n, f"a null that lives in space={space!r} ({null.name!r} lives in {null.spaces})")
        if null in out:
            raise bad_arg("nulls", nulls, "distinct names")
        out.append(null)
    return tuple(out)


def check_progress(progress: bool) -> bool:
    if not isinstance(progress, bool):
        raise bad_arg("progress", progress, "True or False")
    return progress


def check_documents(documents: Any) -> None:
    if isinstance(documents, (str, Document)):
        raise bad_arg("documents", type(documents).__name__, "an iterable of documents (a list, not one text)")
    if not isinstance(documents, Iterable):
        raise bad_arg("documents", type(documents).__name__, "an iterable of strings or Documents")


def model_or_loader(model: Any) -> Any:
    """A model, or a model built from a name (:func:`~tlgeom.models.load.load_model`) or a zero-argument loader."""
    if isinstance(model, str):
        from tlgeom.models.load import load_model

        return load_model(model)
    if callable(model) and not isinstance(model, torch.nn.Module):
        return model()
    return model


def model_description(model: Any, space: str) -> dict[str, Any]:
    """What a run's settings need to know of the model: its name and (normalized space) its norm."""
    space = check_space(space)
    norm, eps = model_normalization(model) if space == "normalized" else ("rms", 1e-5)
    return {"model": model_label(model), "norm": norm, "eps": eps}


@dataclass(frozen=True)
class Plan:
    """Everything one batch needs besides the model, checked once: the local engine builds it from the
    model, the Ray engine from a worker's description of it, and every Ray worker runs the same
    :meth:`process`, so both engines write the same rows (up to float rounding of the batching)."""

    points: str
    space: str
    norm: str
    eps: float
    nulls: tuple[str, ...]
    n_sims: int
    seed: int | None
    width: int
    batch_tokens: int
    settings: dict[str, Any]

    @classmethod
    def of(
        cls,
        info: Any,
        description: dict[str, Any],
        *,
        points: str,
        space: str,
        nulls: Any,
        n_sims: int,
        seed: int | None,
        max_tokens: int | None,
        batch_tokens: int,
        source: Any = None,
    ) -> Plan:
        from tlgeom import __version__

        points, space = check_points(points), check_space(space)
        batch_tokens = check_int("batch_tokens", batch_tokens, 1)
        width = info.n_ctx if max_tokens is None else check_int("max_tokens", max_tokens, 2, info.n_ctx)
        n_sims = check_int("n_sims", n_sims, 0)
        seed = check_seed(seed)
        null_names = tuple(n.name for n in _check_nulls(nulls, space, n_sims))
        norm, eps = description["norm"], description["eps"]
        settings = {
            "model": description["model"],
            "n_layers": info.n_layers,
            "d_model": info.d_model,
            "points": points,
            "space": space,
            "norm": [norm, eps] if space == "normalized" else None,
            "window": width,
            "seed": seed,
            "nulls": list(null_names),
            "n_sims": n_sims if null_names else 0,
            "tlgeom_version": __version__,
        }
        if source is not None:
            settings["source"] = source
        return cls(points, space, norm, eps, null_names, n_sims, seed, width, batch_tokens, settings)

    def process(self, model: Any, info: Any, batch: list[Window]) -> tuple[Any, CorpusStats, int]:
        """One batch through the model: its rows (a pyarrow Table), its sufficient statistics and its
        token count."""
        pa, _ = parquet_modules()
        space, norm, eps, seed, n_sims = self.space, self.norm, self.eps, self.seed, self.n_sims
        null_objs = tuple(get_null(n) for n in self.nulls)
        options = {"center": space == "normalized" and norm == "layernorm"}
        points = self.points
        if space == "normalized":
            metrics: list[StreamMetric] = [_SphereAngles(norm, eps), _SphereLTC(norm, eps)]
        else:
            metrics = [TurningAngles(), LengthToChord()]
        if null_objs:
            metrics.append(_BatchStates(norm if space == "normalized" else None, eps))
        mask = _forward(model, batch, info, points, metrics)
        ang = torch.rad2deg(metrics[0].result()).cpu().numpy()  # [B, pos, V]
        ltc = metrics[1].result().cpu().numpy()  # [B, pos]
        states = metrics[2].result() if null_objs else None
        cols: dict[str, list] = {
            k_: []
            for k_ in ("id", "doc_id", "window", "n_tokens", "layer_mean_angle")
            + ("mean_angle", "mean_abs_dev", "median_ltc", "mean_log_ltc")
        }
        sims: dict[str, list] = {f"sims:{n.name}:{s}": [] for n in null_objs for s in CORPUS_STATISTICS if s in n.tests}
        a_list, l_list = [], []
        for i, w in enumerate(batch):
            n = int(mask[i].sum())
            a, lt = ang[i, :n], ltc[i, :n]
            with np.errstate(invalid="ignore"), _quiet():
                logl = np.log(lt)
                cols["layer_mean_angle"].append(np.nanmean(a, axis=0).tolist())
                cols["mean_angle"].append(float(np.nanmean(a)))
                cols["mean_abs_dev"].append(float(np.nanmean(np.abs(a - 90))))
                cols["median_ltc"].append(float(np.nanmedian(lt)))
                cols["mean_log_ltc"].append(float(np.nanmean(logl)))
            cols["id"].append(w.id)
            cols["doc_id"].append(w.doc_id)
            cols["window"].append(w.index)
            cols["n_tokens"].append(n)
            a_list.append(a)
            l_list.append(logl)
            if states is not None:
                x = states[i, :n]
                for null in null_objs:
                    for st, v in _sim_statistics(null, x, n_sims, seed, w.id, options).items():
                        sims[f"sims:{null.name}:{st}"].append(v.cpu().numpy().tolist())
        cols.update(sims)
        return pa.table(cols), CorpusStats.of(a_list, l_list), int(mask.sum())


def batch_memory(model: Any, batch_tokens: int, width: int, n_points: int, with_states: bool) -> int:
    """Estimated peak bytes of one batch of ``batch_tokens`` padded tokens (windows of up to ``width``):
    the forward pass's own activations (per token about ``20·d_model`` floats for a block's residual,
    attention and MLP intermediates, and ``n_heads·width`` attention scores, softmax and pattern kept:
    ×3) plus the streamed trajectory points (``n_points·d_model`` float64 per token when the states are
    kept for the nulls, else two points)."""
    cfg = model.cfg
    d, heads = int(cfg.d_model), int(getattr(cfg, "n_heads", 1) or 1)
    d_mlp = int(getattr(cfg, "d_mlp", None) or 4 * d)
    forward = 4 * (12 * d + 2 * d_mlp + 3 * heads * min(width, batch_tokens))
    states = 8 * d * (n_points if with_states else 2)
    return batch_tokens * (forward + states)


def check_batch_memory(model: Any, plan: Plan, n_sims: int, available: int | None = None) -> None:
    """Refuse a ``batch_tokens`` whose estimated peak memory (:func:`batch_memory`) exceeds the
    memory available now (psutil), naming the estimate and the largest value that fits."""
    import psutil

    n_points = int(model.cfg.n_layers) * (2 if plan.points == "sublayer" else 1) + 1
    with_states = bool(plan.nulls) and n_sims > 0
    need = batch_memory(model, plan.batch_tokens, plan.width, n_points, with_states)
    avail = int(psutil.virtual_memory().available if available is None else available)
    if need > avail:
        per = max(1, batch_memory(model, 1, plan.width, n_points, with_states))
        lo, hi = 1, plan.batch_tokens
        while lo < hi:  # the largest value whose estimate fits (the estimate grows with batch_tokens)
            mid = (lo + hi + 1) // 2
            lo, hi = (
                (mid, hi) if batch_memory(model, mid, plan.width, n_points, with_states) <= avail else (lo, mid - 1)
            )
        raise bad_arg(
            "batch_tokens",
            plan.batch_tokens,
            f"a value whose batch fits in memory: the estimate is {need / 2**30:.1f} GiB against "
            f"{avail / 2**30:.1f} GiB available; at most {lo} here ({per / 2**10:.0f} KiB per token or more)",
        )


def finish_run(path: Path, plan: Plan, info: Any, n_windows: int, n_tokens: int, n_skipped: int, seconds: float):
    """The :class:`CorpusRun` of a finished run: every shard's statistics merged (both engines)."""
    stats_paths = [path / "stats" / f"{p.stem}.json" for p in part_files(path)]
    if not stats_paths:
        raise bad_arg("documents", "no window was processed", "at least one document")
    return CorpusRun(
        out=path,
        settings=plan.settings,
        stats=merge_stats(stats_paths),
        n_windows=n_windows,
        n_tokens=n_tokens,
        n_skipped=n_skipped,
        seconds=seconds,
        vertex_labels=_compat.point_labels(info.n_layers, plan.points)[1:-1],
    )


class _quiet:
    """Silence numpy's 'Mean of empty slice' for windows too short to have an angle (NaN is the answer)."""

    def __enter__(self):
        import warnings

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)
        return self

    def __exit__(self, *exc):
        return self._cm.__exit__(*exc)


# ---------------------------------------------------------------------------------------------
# The text-level test from the files


def tests_from_rows(
    out: str | os.PathLike,
    *,
    unit: str = "document",
    alpha: float = 0.05,
    correction: str = "holm",
    n_boot: int = 9999,
) -> Any:
    """The text-level Monte-Carlo test of every stored null × statistic, from ``out``'s rows alone.

    For each unit t (a document: the mean over its windows of the observed value and of each
    simulation; or each window with ``unit="window"``), ``s_t`` observed and ``s_t^(b)`` simulated:
    effect ``mean_t (s_t − m_t)`` (``m_t`` the mean of the unit's simulations) with a 95 % percentile
    bootstrap CI over units; ``p = (1 + #{b : T^(b) ≥ T}) / (1 + B)`` on the across-unit means
    (:func:`tlgeom.stats.pvalues.exchangeable_pvalue`, two-sided for ``mean_angle``), as
    :func:`~tlgeom.experiments.curvature.compare_to_nulls`; ``p_adjusted`` by ``correction`` over the
    family, ``reject = p_adjusted ≤ alpha``. Windows of one document share its context, hence the
    default document unit.

    Returns:
        DataFrame with columns null, statistic, space, observed, null_mean, effect, ci_low, ci_high,
        p, p_adjusted, n_texts, reject (one row per null × statistic).
    """
    import pandas as pd

    from tlgeom._args import check_alpha, check_correction

    unit = check_choice("unit", unit, UNITS)
    alpha, correction = check_alpha(alpha), check_correction(correction)
    n_boot = check_int("n_boot", n_boot, 0)
    path = Path(out)
    settings = json.loads((path / "run.json").read_text()) if (path / "run.json").is_file() else {}
    rows = read_rows(path)
    sim_cols = [c for c in rows.columns if c.startswith("sims:")]
    if not sim_cols:
        raise bad_arg("out", str(out), "a run with nulls and n_sims > 0 (no simulated statistics stored)")
    seed = settings.get("seed", 0)
    group = rows["doc_id"] if unit == "document" else rows["id"]
    order = list(dict.fromkeys(group))
    result = []
    for col in sim_cols:
        _, name, st = col.split(":")
        obs = rows[OBSERVED_COLUMN[st]].to_numpy(dtype=float)
        sim = np.stack([np.asarray(v, dtype=float) for v in rows[col]])  # [rows, B]
        conf = np.concatenate([obs[:, None], sim], axis=1)  # [rows, B+1]
        s = pd.DataFrame(conf).groupby(group.to_numpy()).mean().loc[order].to_numpy()  # [T, B+1]
        s = s[np.isfinite(s).all(1)]
        m = s[:, 1:].mean(1)
        eff = s[:, 0] - m
        alt = ALTERNATIVES[st]
        p = float(exchangeable_pvalue(torch.from_numpy(s.mean(0)), alt))
        row = table_row(get_null(name), st, settings.get("space", "raw"), alt, s[:, 0], m, eff, p, n_boot, seed)
        row["p_min"], row["p_min_why"] = min_pvalue_mc(s.shape[1] - 1), f"{s.shape[1] - 1} simulations"
        if alt in OPPOSITE:
            row["p_opposite"] = float(exchangeable_pvalue(torch.from_numpy(s.mean(0)), OPPOSITE[alt]))
        result.append(row)
    table = decide(result, alpha, correction)
    return tests_table(
        table[
            ["null", "statistic", "space", "observed", "null_mean", "effect", "ci_low", "ci_high", "p", "p_adjusted"]
            + ["n_texts", "informative", "reject", "against", "note"]
        ],
        unit,
    )
