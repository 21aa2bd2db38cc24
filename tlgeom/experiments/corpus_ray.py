"""The corpus engine on Ray Data: :func:`~tlgeom.experiments.corpus.run_corpus` with ``engine="ray"``.

The documents become a Ray Dataset (``ray.data.from_items``: ``id``, ``text`` and the ids of the
document's windows already written); ``map_batches`` sends ``docs_per_task`` documents at a time to an
actor pool of ``workers`` actors, each holding **one model** (loaded once per actor from a name or a
zero-argument loader, with ``gpus_per_worker`` GPUs and ``cpus_per_worker`` CPUs). An actor cuts its
documents into windows, packs them into length-bucketed batches and runs exactly the local engine's
:meth:`~tlgeom.experiments.corpus.Plan.process` on each, then writes each batch as a Parquet part and
a statistics shard into ``out`` (the folder must be one that every worker can write: a local disk on
one machine, a shared file system on a cluster). The driver only collects one small row per document
(windows, tokens, part names) and at the end merges the statistics shards (exact sums: order-free).

**Same numbers as the local engine.** Rows are computed by the same code; only the batching differs,
so rows agree to float rounding of the forward pass (tested on a 2-worker local Ray). The null
simulations are seeded per window id, not per batch or worker.

**Failures.** A part's name is a hash of the window ids it holds, so when Ray restarts a killed actor
and retries its task, the retry writes the same parts under the same names (an atomic replace: no
duplicate rows). A run that stops (the driver is killed, the retries are exhausted) resumes like a
local run: re-running with the same ``out`` skips the windows already written. Resuming is possible
across engines (a Ray run can be finished locally and vice versa): the settings in ``run.json`` are
the same.

**Where it runs.** Without a running Ray, ``ray.init()`` starts an embedded local one (and it is shut
down at the end); with ``RAY_ADDRESS`` set, or after the caller's own ``ray.init(address=...)``,
the same call joins that cluster unchanged. See the README section "Corpus runs on Ray" for a
KubeRay / ``ray job submit`` recipe.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from tlgeom._args import check_int
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom.data.corpora import Document
from tlgeom.experiments.corpus_core import (
    CorpusRun,
    Plan,
    as_document,
    bucket_batches,
    check_documents,
    check_progress,
    clean_interrupted,
    clear_run,
    finish_run,
    iter_windows,
    model_description,
    parquet_modules,
    part_files,
    prepare_out,
    write_part,
)
from tlgeom.models import _compat

__all__ = ["run_corpus_ray", "part_name"]


def _ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise TlgeomError("engine='ray' needs Ray Data: pip install 'tlgeom[ray]'") from exc
    return ray


def _load(model: Any) -> Any:
    """A worker's model: from a name (:func:`~tlgeom.models.load.load_model`) or a zero-argument loader."""
    if isinstance(model, str):
        from tlgeom.models.load import load_model

        return load_model(model)
    return model()


def _check_loader(model: Any) -> Any:
    if isinstance(model, str) and model.strip():
        return model
    if callable(model) and not isinstance(model, torch.nn.Module):
        return model
    raise bad_arg(
        "model",
        type(model).__name__,
        "with engine='ray', a model name (tlgeom.load_model) or a picklable zero-argument function that "
        "returns the model: every Ray worker loads its own copy",
    )


def part_name(window_ids: Iterable[str]) -> str:
    """``part-r<hash>``: the name of the part holding these windows (the same on a retry)."""
    h = hashlib.sha1("\n".join(window_ids).encode()).hexdigest()[:20]
    return f"part-r{h}"


def _done_by_doc(out: Path) -> dict[str, list[str]]:
    """The window ids already written, by document id (read from the parts' ``id``/``doc_id`` columns)."""
    _, pq = parquet_modules()
    done: dict[str, list[str]] = {}
    for p in part_files(out):
        t = pq.read_table(p, columns=["id", "doc_id"])
        for w, d in zip(t.column("id").to_pylist(), t.column("doc_id").to_pylist()):
            done.setdefault(d, []).append(w)
    return done


def _describe(model: Any, space: str, threads: int) -> tuple[Any, dict[str, Any]]:
    torch.set_num_threads(threads)
    m = _load(model)
    return _compat.check_model(m), model_description(m, space)


class _Worker:
    """One Ray actor: one model; turns a batch of documents into Parquet parts in ``out``."""

    def __init__(self, model: Any, plan: Plan, out: str, threads: int, device: str | torch.device | None) -> None:
        torch.set_num_threads(threads)
        self.model = _load(model)
        if device is not None:
            self.model = self.model.to(device)
        elif torch.cuda.is_available():
            self.model = self.model.to("cuda")
        self.info = _compat.check_model(self.model)
        self.plan, self.out = plan, Path(out)

    def __call__(self, docs: dict[str, Any]) -> dict[str, Any]:
        done = {w for ws in docs["done"] for w in ws}
        windows = [
            w
            for w in iter_windows(
                self.model, [Document(str(i), str(t)) for i, t in zip(docs["id"], docs["text"])], self.plan.width
            )
            if w.id not in done
        ]
        n_win = dict.fromkeys(map(str, docs["id"]), 0)
        n_tok = dict.fromkeys(n_win, 0)
        for batch in bucket_batches(iter(windows), self.plan.batch_tokens, max(1, len(windows))):
            table, stats, _ = self.plan.process(self.model, self.info, batch)
            write_part(self.out, part_name(w.id for w in batch), table, stats)
            for w, n in zip(batch, table.column("n_tokens").to_pylist()):
                n_win[w.doc_id] += 1
                n_tok[w.doc_id] += int(n)
        ids = list(n_win)
        return {"id": ids, "n_windows": [n_win[i] for i in ids], "n_tokens": [n_tok[i] for i in ids]}


def run_corpus_ray(
    model: Any,
    documents: Iterable[Any],
    out: str | os.PathLike,
    *,
    batch_tokens: int = 4096,
    max_tokens: int | None = None,
    points: str = "resid",
    space: str = "raw",
    nulls: Any = None,
    n_sims: int = 0,
    seed: int | None = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    workers: int = 2,
    docs_per_task: int = 16,
    cpus_per_worker: int = 1,
    gpus_per_worker: float | None = None,
    retries: int = 2,
    source: Any = None,
    overwrite: bool = False,
) -> CorpusRun:
    """:func:`~tlgeom.experiments.corpus.run_corpus` on Ray Data (module doc); same rows, same folder.

    Args:
        model: a model name (:func:`~tlgeom.models.load.load_model`) or a picklable zero-argument function
            returning a TransformerLens model; each worker loads its own (a model object cannot be shipped).
        documents, out, batch_tokens, max_tokens, points, space, nulls, n_sims, seed, progress: as
            :func:`~tlgeom.experiments.corpus.run_corpus`.
        device: the workers' torch device (default: ``"cuda"`` where the worker sees a GPU, else CPU).
        workers: actors in the pool (models held at once).
        docs_per_task: documents per Ray task (a task's windows are bucketed by length together).
        cpus_per_worker: CPUs reserved per actor (also its torch threads).
        gpus_per_worker: GPUs reserved per actor (default: 1 when the cluster has GPUs, else 0).
        retries: when the Ray stage fails anyway (an actor that cannot be restarted, a lost node), resume
            it this many times (each a fresh actor pool that skips every window already written) before
            giving up with a TlgeomError; Ray's own retries of a killed actor's task come first.

    Returns:
        A :class:`~tlgeom.experiments.corpus.CorpusRun` (``seconds``: the Ray stage, model loading included).
    """
    ray = _ray()
    loader = _check_loader(model)
    workers = check_int("workers", workers, 1)
    docs_per_task = check_int("docs_per_task", docs_per_task, 1)
    cpus_per_worker = check_int("cpus_per_worker", cpus_per_worker, 1)
    retries = check_int("retries", retries, 0)
    check_progress(progress)
    check_documents(documents)
    if gpus_per_worker is not None and (not isinstance(gpus_per_worker, (int, float)) or gpus_per_worker < 0):
        raise bad_arg("gpus_per_worker", gpus_per_worker, "None or a number ≥ 0")
    if device is not None:
        try:
            device = str(torch.device(device))
        except (RuntimeError, TypeError):
            raise bad_arg("device", device, "a torch device such as 'cpu' or 'cuda'") from None
    started = not ray.is_initialized()
    if started:  # embedded local Ray, or the cluster named by RAY_ADDRESS
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        if gpus_per_worker is None:
            gpus_per_worker = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
        describe = ray.remote(num_cpus=cpus_per_worker, num_gpus=gpus_per_worker)(_describe)
        try:
            info, description = ray.get(describe.remote(loader, space, cpus_per_worker))
        except ray.exceptions.RayTaskError as exc:  # a bad model name: the worker's own TlgeomError
            if isinstance(exc.cause, TlgeomError):
                raise exc.cause from None
            raise
        plan = Plan.of(
            info,
            description,
            points=points,
            space=space,
            nulls=nulls,
            n_sims=n_sims,
            seed=seed,
            max_tokens=max_tokens,
            batch_tokens=batch_tokens,
            source=source,
        )
        if overwrite:
            clear_run(out)
        path, _created = prepare_out(out, plan.settings, overwrite)
        clean_interrupted(path)
        done = _done_by_doc(path)
        items: list[dict[str, Any]] = []
        seen: set[str] = set()
        n_skipped = 0
        for i, raw in enumerate(documents):
            doc = as_document(raw, i)
            if doc.id in seen:  # as the local engine: a repeated id gets a distinct id by its position
                doc = type(doc)(f"{doc.id}@{i}", doc.text)
            seen.add(doc.id)
            mine = sorted(done.get(doc.id, ()))
            n_skipped += len(mine)
            items.append({"id": doc.id, "text": doc.text, "done": mine})
        if not items:
            raise bad_arg("documents", "an empty corpus", "at least one document")
        n_windows = n_tokens = 0
        t0 = time.perf_counter()
        ray.data.DataContext.get_current().enable_progress_bars = False
        from tqdm.auto import tqdm

        bar = tqdm(total=len(items), disable=not progress, file=sys.stderr, unit="doc", desc="corpus (ray)")
        try:
            for attempt in range(retries + 1):
                if attempt:  # resume: what the failed attempt wrote is skipped, window by window
                    now = _done_by_doc(path)
                    items = [{**it, "done": sorted(now.get(it["id"], ()))} for it in items]
                n_blocks = max(1, -(-len(items) // docs_per_task))
                ds = ray.data.from_items(items, override_num_blocks=n_blocks)
                rows = ds.map_batches(
                    _Worker,
                    fn_constructor_args=(loader, plan, str(path), cpus_per_worker, device),
                    batch_size=docs_per_task,
                    batch_format="numpy",
                    compute=ray.data.ActorPoolStrategy(size=min(workers, n_blocks)),
                    num_cpus=cpus_per_worker,
                    num_gpus=gpus_per_worker,
                )
                try:
                    for batch in rows.iter_batches(batch_size=None, batch_format="numpy"):
                        n_windows += int(batch["n_windows"].sum())
                        n_tokens += int(batch["n_tokens"].sum())
                        bar.update(len(batch["id"]))
                        bar.set_postfix(tokens_s=f"{n_tokens / max(time.perf_counter() - t0, 1e-9):.0f}", refresh=False)
                    break
                except ray.exceptions.RayError as exc:
                    cause = getattr(exc, "cause", None)
                    if isinstance(cause, TlgeomError):
                        raise cause from None
                    if attempt == retries:
                        raise TlgeomError(
                            f"the Ray run failed {retries + 1} times (last: {type(exc).__name__}); every window "
                            f"written so far is kept in {path}: run again with the same out to resume"
                        ) from exc
                    warnings.warn(
                        f"the Ray run failed ({type(exc).__name__}: {str(exc)[:200]}); resuming "
                        f"(attempt {attempt + 2} of {retries + 1})",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        finally:
            bar.close()
        seconds = time.perf_counter() - t0
    finally:
        if started:
            ray.shutdown()
    return finish_run(path, plan, info, n_windows, n_tokens, n_skipped, seconds)
