"""The corpus engine: turning angles and length-to-chord over a whole corpus, streamed, resumable.

:func:`run_corpus` runs a model over any iterable of documents and writes **one row per document
window** to Parquet, batch by batch, plus **mergeable sufficient statistics** per batch:

::

    out/
      run.json                       settings (model, points, space, seed, nulls, n_sims, windows, version)
      rows/part-<k>-<hex>.parquet    one file per batch (written to a temp name, renamed atomically)
      stats/part-<k>-<hex>.json      the same batch's sufficient statistics (see below)

**Windows.** A document is tokenized whole (``model.to_tokens``). If it has more than
``W = min(max_tokens, n_ctx)`` tokens it is cut into consecutive windows: the leading special token
(BOS / [CLS]) and the trailing one ([SEP]) of the tokenization are repeated in every window, and the
text tokens in between are split into chunks of ``W − (number of special tokens)``. A document of one
window keeps its id; window ``k`` of a longer one has the id ``<id>#w<k>`` (``k`` from 0). Each window
is an independent forward pass (no state is carried across windows).

**Batches.** Windows are read ``lookahead`` at a time, sorted by token count within that buffer and
packed greedily into batches of at most ``batch_tokens`` padded tokens (rows × longest row), so padding
is small. The forward pass streams each trajectory point into running metrics
(:mod:`tlgeom.models.streaming`): no activation cache. Memory is flat in corpus size: one buffer of
token ids, one batch's activations (and, with nulls, one batch's states), never a list of all states;
the output goes to disk as it is computed. Batching does not change any number beyond float rounding
of the forward pass (tested), and the null simulations are seeded per window id, so they do not depend
on batching, order or resumption either.

**Rows** (one per window): ``id``, ``doc_id``, ``window``, ``n_tokens``, ``layer_mean_angle`` (list:
mean turning angle in degrees at each layer vertex, over the window's tokens), ``mean_angle`` (mean of
all its angles θ, degrees), ``mean_abs_dev`` (mean ``|θ − 90°|``), ``median_ltc`` and ``mean_log_ltc``
(median and mean of ``log LTC`` over tokens; LTC = ``Σ‖Δ_l‖ / ‖x_last − x_0‖``). With ``nulls`` and
``n_sims > 0``: a list column ``sims:<null>:<statistic>`` holding the window's ``n_sims`` simulated
values of each statistic the null can test (``mean_angle``, ``mean_abs_dev``, ``log_ltc``), drawn from
a generator seeded by ``(seed, null, window id)``. :func:`tests_from_rows` rebuilds the text-level
Monte-Carlo test of :func:`tlgeom.experiments.curvature.compare_to_nulls` from these files alone.
``sharp_flat`` is not offered: its thresholds are quantiles of the pooled null of *all* texts, which a
streamed run cannot know before the end.

**Sufficient statistics** (per batch, JSON): the number of windows and tokens; per layer vertex the
count, sum and sum of squares of the angles (degrees) and a histogram over fixed 1° bins [0°, 180°];
the same count/sum/sum of squares for ``log LTC``. Sums are kept *exactly* (each float64 is an integer
times a power of two; the sum is stored as an integer and a binary exponent), so :func:`merge_stats`
gives the same numbers whatever the order or grouping of the shards.

**Resuming.** Re-running with the same ``out`` skips every window whose id is already in a Parquet
part. A batch's rows become visible only by the atomic rename of its part (its stats file is renamed
just before; a stats file without its part is an interrupted batch and is deleted on resume), so an
interrupted run loses at most the batch in flight and never leaves a half-written file. Resuming with
different settings (model, points, space, seed, nulls, n_sims, window size) is a TlgeomError.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from tlgeom._args import check_bool, check_choice, check_int
from tlgeom._errors import bad_arg
from tlgeom.data.corpora import Document
from tlgeom.experiments.corpus_core import (  # the public names of the corpus engine, importable from here
    CORPUS_STATISTICS,
    ENGINES,
    HIST_EDGES,
    OBSERVED_COLUMN,
    UNITS,
    CorpusRun,
    CorpusStats,
    Plan,
    Window,
    batch_memory,
    bucket_batches,
    check_batch_memory,
    check_documents,
    check_progress,
    clean_interrupted,
    clear_run,
    done_ids,
    exact_sum,
    finish_run,
    iter_windows,
    merge_stats,
    model_description,
    model_or_loader,
    part_files,
    precheck_out,
    prepare_out,
    read_rows,
    remove_created,
    split_windows,
    tests_from_rows,
    write_part,
)
from tlgeom.models import _compat

__all__ = [
    "run_corpus",
    "CorpusRun",
    "CorpusStats",
    "merge_stats",
    "read_rows",
    "tests_from_rows",
    "exact_sum",
    "split_windows",
    "precheck_out",
    "clear_run",
    "batch_memory",
    "check_batch_memory",
    "Plan",
    "CORPUS_STATISTICS",
    "OBSERVED_COLUMN",
    "HIST_EDGES",
    "UNITS",
    "ENGINES",
]

if TYPE_CHECKING:
    import torch


def run_corpus(
    model: Any,
    documents: Iterable[str | Document],
    out: str | os.PathLike,
    *,
    batch_tokens: int = 4096,
    max_tokens: int | None = None,
    points: str = "resid",
    space: str = "raw",
    nulls: Sequence[str] | None = None,
    n_sims: int = 0,
    seed: int | None = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    lookahead: int = 256,
    engine: str = "local",
    source: Any = None,
    overwrite: bool = False,
    **ray_options: Any,
) -> CorpusRun:
    """Turning angles and LTC of every document of a corpus, streamed to Parquet (see the module doc).

    Memory is flat in the corpus size: documents are read lazily, ``lookahead`` windows at a time,
    each batch's results go to disk before the next batch, and nothing proportional to the corpus is
    kept except the set of ids (to refuse duplicates and to resume).

    Args:
        model: a TransformerLens model, a model name (:func:`~tlgeom.models.load.load_model`) or a
            zero-argument function returning a model.
        documents: any iterable of strings or :class:`~tlgeom.data.corpora.Document` (read once, lazily).
            A string's id is ``"sha1-"`` + 12 hex digits of its SHA-1 (:func:`~tlgeom.data.corpora.text_id`).
        out: the run folder (new, empty, or an earlier run's folder to resume).
        batch_tokens: at most this many padded tokens per forward pass (rows × longest row).
        max_tokens: window size ``W`` (default ``n_ctx``; at most ``n_ctx``, at least 2).
        points: ``"resid"`` or ``"sublayer"``.
        space: ``"raw"`` or ``"normalized"`` (the model's own norm, states put on the sphere of radius √d,
            exactly as :func:`~tlgeom.experiments.curvature.compare_to_nulls` prepares them).
        nulls: simulated nulls (:mod:`tlgeom.stats.nulls` names) whose per-window statistics are stored
            for :func:`tests_from_rows`; ignored when ``n_sims == 0``.
        n_sims: simulations per window and null (0: none).
        seed: int in [0, 2**63) or None (None: unseeded simulations, not reproducible).
        device: None (the model's device) or a device equal to it (move the model first).
        progress: a tqdm bar on stderr (windows; tokens/s).
        lookahead: windows read and sorted by length at a time (the bucketing buffer).
        source: what identifies the corpus (``tlgeom.data.corpora.corpus_source``: a name, or a path
            and a content hash), recorded in ``run.json``: resuming with another source is refused like
            resuming with other settings. ``tlgeom corpus`` passes it; None records nothing.
        overwrite: start over: an earlier run in ``out`` (its ``run.json``, ``rows/``, ``stats/``) is
            removed first, and a folder holding other files is accepted (they are left alone).
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data, :mod:`tlgeom.experiments.corpus_ray`:
            one model per worker; ``model`` must then be a name or a zero-argument loader).
        **ray_options: with ``engine="ray"``: ``workers``, ``docs_per_task``, ``cpus_per_worker``,
            ``gpus_per_worker`` (:func:`~tlgeom.experiments.corpus_ray.run_corpus_ray`).

    Returns:
        A :class:`CorpusRun`.

    Raises:
        TlgeomError: bad model/arguments, an empty corpus, a repeated id, ``out`` a file or a folder of
            a run with other settings; checked before any forward pass where possible.
    """
    engine = check_choice("engine", engine, ENGINES)
    if engine == "ray":
        from tlgeom.experiments.corpus_ray import run_corpus_ray

        return run_corpus_ray(
            model,
            documents,
            out,
            batch_tokens=batch_tokens,
            max_tokens=max_tokens,
            points=points,
            space=space,
            nulls=nulls,
            n_sims=n_sims,
            seed=seed,
            device=device,
            progress=progress,
            source=source,
            overwrite=overwrite,
            **ray_options,
        )
    if ray_options:
        raise bad_arg(next(iter(ray_options)), next(iter(ray_options.values())), "an option of engine='ray' only")
    model = model_or_loader(model)
    info = _compat.check_model(model)
    plan = Plan.of(
        info,
        model_description(model, space),
        points=points,
        space=space,
        nulls=nulls,
        n_sims=n_sims,
        seed=seed,
        max_tokens=max_tokens,
        batch_tokens=batch_tokens,
        source=source,
    )
    check_batch_memory(model, plan, n_sims)
    lookahead = check_int("lookahead", lookahead, 1)
    check_progress(progress)
    _compat.check_model_device(model, device)
    check_documents(documents)
    check_bool("overwrite", overwrite)
    if overwrite:
        clear_run(out)
    path, created = prepare_out(out, plan.settings, overwrite)
    clean_interrupted(path)
    done = done_ids(path)

    from tqdm.auto import tqdm

    bar = tqdm(disable=not progress, file=sys.stderr, unit="doc", desc="corpus")
    n_windows = n_tokens = 0
    seconds = 0.0
    k0 = len(part_files(path))
    skipped: list[int] = [0]

    def todo() -> Iterator[Window]:
        for w in iter_windows(model, documents, plan.width):
            if w.id in done:
                skipped[0] += 1
                continue
            yield w

    try:
        t0 = time.perf_counter()
        for k, batch in enumerate(bucket_batches(todo(), batch_tokens, lookahead)):
            table, stats, ntok = plan.process(model, info, batch)
            write_part(path, f"part-{k0 + k:06d}-{secrets.token_hex(4)}", table, stats)
            n_windows += len(batch)
            n_tokens += ntok
            seconds = time.perf_counter() - t0
            bar.update(len(batch))
            bar.set_postfix(tokens_s=f"{n_tokens / max(seconds, 1e-9):.0f}", refresh=False)
    except BaseException:
        if n_windows == 0 and not part_files(path):
            remove_created(created)  # a failed start (a bad document, an interrupt) leaves nothing behind
        raise
    finally:
        bar.close()
    return finish_run(path, plan, info, n_windows, n_tokens, skipped[0], seconds)
