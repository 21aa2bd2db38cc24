"""Corpus engine costs (issue 21), side by side in one run: ratios are what to read, not absolute times.

1. **Throughput.** Tokens per second of :func:`tlgeom.run_corpus` (streamed turning angles and LTC,
   Parquet rows and exact per-batch statistics written to disk) against a *plain batched forward* of
   the same model over exactly the same batches: the same windows, built by the engine's own
   ``_windows`` / ``_batches`` (same length bucketing, same right padding with the pad id, same
   attention mask), tokenization included on both sides, ``return_type=None`` on both. Ratio
   ``run_corpus / plain`` (target ≥ 0.9). The per-window null simulations are priced separately: a
   second ``run_corpus`` with the space's default nulls and ``--n-sims`` simulations, as a ratio to
   the plain pass. Variants are interleaved over ``--reps`` repeats and the median taken, so drift on
   a shared machine hits each alike. A "tokenize + batch" row (no forward) shows the share of the
   pipeline that is not the model.
2. **Memory.** Peak RSS growth of ``run_corpus`` over the first 50 vs 200 documents (``--mem-docs``),
   each in a fresh subprocess of this script: the model is loaded and the engine warmed up on two
   documents, then the kernel's peak-RSS mark is reset (``/proc/self/clear_refs``; where that is not
   available, ``resource.getrusage`` ``ru_maxrss`` is used, which cannot be reset) and read back after
   the run. Ratio ``growth(200) / growth(50)`` (target: within 10 %, i.e. memory flat in corpus size).
   On CUDA the peak allocated GPU memory of the run is printed too.
3. **Ray engine** (``--ray``, needs ``tlgeom[ray]``): the same documents through ``engine="ray"`` with
   ``--workers`` actors (one model each, ``--threads`` torch threads each) on an embedded local Ray,
   against the local engine in this process. Reported: the Ray run's wall time (Ray start, worker
   processes, model loading and the corpus), the same for a second Ray run on the same cluster with
   nothing left to do (all windows written: the fixed cost of a pool), and the ratio of the local
   engine's time to the Ray run's time without that fixed cost.

Usage::

    python benchmarks/bench_corpus.py --tiny                 # seconds: tiny random model, smoke run
    python benchmarks/bench_corpus.py --docs 30              # smollm2-135m on CPU, 1 thread
    python benchmarks/bench_corpus.py --device cuda --docs 1000 --threads 4   # the issue's GPU target
    python benchmarks/bench_corpus.py --tiny --no-memory --ray --workers 2    # local vs Ray engine

The documents are the 300 ABC news articles of ``load_corpus("lee")``; a ``--docs`` beyond the corpus
repeats it with fresh ids (said in the output), so the workload stays real text.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

TINY_N_CTX = 128


# ---------------------------------------------------------------------------------------------
# Setup shared by the parent and the memory children


def load(args: argparse.Namespace) -> Any:
    import tlgeom
    from tlgeom.models.load import tiny_model

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    if args.tiny:
        return tiny_model("gpt2", n_ctx=TINY_N_CTX).to(args.device)
    return tlgeom.load_model(args.model, device=args.device)


def documents(n: int, corpus: str) -> tuple[list[Any], bool]:
    """The first ``n`` documents of ``corpus``; past its end the corpus repeats under fresh ids."""
    from tlgeom.data.corpora import Document, load_corpus

    base = load_corpus(corpus)
    docs = [
        base[i % len(base)]
        if i < len(base)
        else Document(f"{base[i % len(base)].id}#rep{i // len(base)}", base[i % len(base)].text)
        for i in range(n)
    ]
    return docs, n > len(base)


def sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_kwargs(args: argparse.Namespace, nulls: bool) -> dict[str, Any]:
    from tlgeom.stats.nulls import DEFAULT_NULLS

    kw: dict[str, Any] = {"batch_tokens": args.batch_tokens, "space": args.space, "progress": False, "seed": 0}
    if nulls:
        kw.update(nulls=DEFAULT_NULLS[args.space], n_sims=args.n_sims)
    return kw


# ---------------------------------------------------------------------------------------------
# 1. Throughput


def plain_forward(model: Any, docs: list[Any], args: argparse.Namespace, forward: bool = True) -> int:
    """The engine's own windows and batches, padded as ``corpus._forward`` pads them, through a plain
    forward pass (no hooks, no metrics, nothing written). Returns the number of real tokens."""
    from tlgeom.experiments.corpus_core import bucket_batches as _batches
    from tlgeom.experiments.corpus_core import iter_windows as _windows
    from tlgeom.models import _compat

    info = _compat.check_model(model)
    dev = _compat.model_device(model)
    pad_id = getattr(getattr(model, "tokenizer", None), "pad_token_id", None) or 0
    n_tokens = 0
    for batch in _batches(_windows(model, docs, info.n_ctx), args.batch_tokens, 256):
        pos = max(w.tokens.numel() for w in batch)
        toks = torch.full((len(batch), pos), int(pad_id), dtype=torch.long)
        mask = torch.zeros((len(batch), pos), dtype=torch.bool)
        for i, w in enumerate(batch):
            toks[i, : w.tokens.numel()] = w.tokens
            mask[i, : w.tokens.numel()] = True
        n_tokens += int(mask.sum())
        if forward:
            with torch.no_grad():
                model(toks.to(dev), return_type=None, **_compat.forward_kwargs(model, mask, info))
    sync(args.device)
    return n_tokens


def throughput(model: Any, docs: list[Any], args: argparse.Namespace) -> dict[str, dict[str, float]]:
    from tlgeom.experiments.corpus import run_corpus

    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench_corpus_") as tmp:
        runs = iter(range(10**6))

        def corpus(nulls: bool) -> int:
            out = Path(tmp) / f"run{next(runs)}"
            res = run_corpus(model, docs, out, **run_kwargs(args, nulls))
            sync(args.device)
            return res.n_tokens

        fns = {
            "plain forward": lambda: plain_forward(model, docs, args),
            "run_corpus": lambda: corpus(False),
            f"run_corpus + nulls (n_sims={args.n_sims})": lambda: corpus(True),
            "tokenize + batch only": lambda: plain_forward(model, docs, args, forward=False),
        }
        for k, f in fns.items():  # warm-up (lazy imports, allocator pools, kernels)
            counts[k] = f()
        times: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(args.reps):
            for k, f in fns.items():
                t = time.perf_counter()
                f()
                times[k].append(time.perf_counter() - t)
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"the variants saw different token counts: {counts}")
    n = counts["plain forward"]
    base = statistics.median(times["plain forward"])
    return {
        k: {
            "tokens": n,
            "seconds": statistics.median(v),
            "tokens_s": n / statistics.median(v),
            "ratio": base / statistics.median(v),
        }
        for k, v in times.items()
    }


# ---------------------------------------------------------------------------------------------
# 2. Memory (fresh subprocess per corpus size)


def _status_kib(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _maxrss_kib() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r  # bytes on macOS, KiB on Linux


def memory_child(args: argparse.Namespace) -> None:
    """Runs in a fresh process: peak RSS growth of one run_corpus over ``--_mem-child`` documents."""
    from tlgeom.experiments.corpus import run_corpus

    model = load(args)
    docs, _ = documents(args._mem_child + 2, args.corpus)
    cuda = torch.device(args.device).type == "cuda"
    with tempfile.TemporaryDirectory(prefix="bench_corpus_mem_") as tmp:
        run_corpus(model, docs[-2:], Path(tmp) / "warm", **run_kwargs(args, False))  # warm-up
        gc.collect()
        before = _status_kib("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS mark (VmHWM) to the current RSS
            how = "VmHWM (reset)"
        except OSError:
            before, how = _maxrss_kib(), "ru_maxrss (not resettable)"
        if cuda:
            torch.cuda.reset_peak_memory_stats()
            gpu_before = torch.cuda.memory_allocated()
        res = run_corpus(model, docs[: args._mem_child], Path(tmp) / "run", **run_kwargs(args, False))
        peak = _status_kib("VmHWM") if how.startswith("VmHWM") else _maxrss_kib()
        out = {"extra_peak_mib": max(peak - before, 0) / 1024, "how": how, "tokens": res.n_tokens}
        if cuda:
            out["extra_gpu_peak_mib"] = (torch.cuda.max_memory_allocated() - gpu_before) / 2**20
    print(json.dumps(out))


#: Environment of the second memory measurement: glibc's mmap threshold fixed at 64 KiB (it otherwise
#: rises with the largest block freed, so later large tensors come from the heap, whose free-but-kept
#: fragments count as RSS): separates what the allocator keeps from what the engine keeps.
FIXED_MMAP = {"MALLOC_MMAP_THRESHOLD_": "65536"}


def memory(args: argparse.Namespace, extra_env: dict[str, str] | None = None) -> dict[int, dict[str, Any]]:
    cmd = [sys.executable, __file__, "--device", args.device, "--model", args.model, "--threads", str(args.threads)]
    cmd += ["--batch-tokens", str(args.batch_tokens), "--space", args.space, "--corpus", args.corpus]
    cmd += ["--tiny"] if args.tiny else []
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads), **(extra_env or {}))
    result = {}
    for n in args.mem_docs:
        done = subprocess.run([*cmd, "--_mem-child", str(n)], capture_output=True, text=True, env=env)
        if done.returncode:
            raise RuntimeError(f"memory child for {n} documents failed:\n{done.stderr[-3000:]}")
        result[n] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("nan")


# ---------------------------------------------------------------------------------------------


def ray_engine(docs: list[Any], args: argparse.Namespace) -> None:
    """Part 3: the local engine vs ``engine="ray"`` on the same documents (module doc)."""
    import functools
    import tempfile

    import ray

    from tlgeom.experiments.corpus import run_corpus
    from tlgeom.models.load import tiny_model

    loader: Any = functools.partial(tiny_model, "gpt2", n_ctx=TINY_N_CTX) if args.tiny else args.model
    kw = {"batch_tokens": args.batch_tokens, "space": args.space, "progress": False}
    with tempfile.TemporaryDirectory() as tmp:
        model = load(args)
        t0 = time.perf_counter()
        local = run_corpus(model, docs, f"{tmp}/local", **kw)
        t_local = time.perf_counter() - t0
        del model
        t0 = time.perf_counter()
        ray.init(num_cpus=args.workers * args.threads + 1, include_dashboard=False, log_to_driver=False)
        t_init = time.perf_counter() - t0
        opts = {"engine": "ray", "workers": args.workers, "cpus_per_worker": args.threads, "device": args.device}
        try:
            t0 = time.perf_counter()
            run = run_corpus(loader, docs, f"{tmp}/ray", **kw, **opts)
            t_ray = time.perf_counter() - t0
            t0 = time.perf_counter()
            again = run_corpus(loader, docs, f"{tmp}/ray", **kw, **opts)  # nothing left: the pool's fixed cost
            t_fixed = time.perf_counter() - t0
        finally:
            ray.shutdown()
    assert run.n_tokens == local.n_tokens and again.n_windows == 0
    work = max(t_ray - t_fixed, 1e-9)
    print(
        f"\n3. Ray engine ({args.workers} workers × {args.threads} threads) vs the local engine (1 process × {args.threads})"
    )
    print(f"{'variant':46s} {'seconds':>9s}")
    for k, v in (
        ("local engine", t_local),
        ("ray.init (embedded local Ray)", t_init),
        ("Ray engine, whole run", t_ray),
        ("Ray engine, nothing to do (fixed cost of a pool)", t_fixed),
    ):
        print(f"{k:46s} {v:9.2f}")
    print(
        f"ratio local / Ray without the fixed cost: {_ratio(t_local, work):.2f}; with it: {_ratio(t_local, t_ray):.2f}"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda" + (" (available here)" if cuda else ""))
    p.add_argument("--model", default="smollm2-135m", help="a tlgeom.load_model name (default smollm2-135m)")
    p.add_argument("--tiny", action="store_true", help="tlgeom.models.tiny_model instead of --model (smoke run)")
    p.add_argument(
        "--docs", type=int, default=None, help="documents for the throughput part (default 30 on CPU, 1000 on CUDA)"
    )
    p.add_argument("--corpus", default="lee", help="a load_corpus name (default lee: 300 news articles)")
    p.add_argument("--batch-tokens", type=int, default=4096, help="run_corpus batch_tokens (default 4096)")
    p.add_argument("--space", default="raw", choices=("raw", "normalized"))
    p.add_argument(
        "--n-sims", type=int, default=100, help="simulations per window and null in the nulls run (default 100)"
    )
    p.add_argument("--reps", type=int, default=3, help="interleaved timed repeats, median taken (default 3)")
    p.add_argument("--mem-docs", type=int, nargs=2, default=[50, 200], metavar=("SMALL", "LARGE"))
    p.add_argument("--no-memory", action="store_true", help="skip the memory part")
    p.add_argument("--no-throughput", action="store_true", help="skip the throughput part")
    p.add_argument(
        "--allocators",
        choices=("both", "default", "fixed"),
        default="both",
        help="memory part: glibc's default allocator, the fixed mmap threshold, or both (default)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine may be shared)")
    p.add_argument("--ray", action="store_true", help="also time the Ray engine against the local one (tlgeom[ray])")
    p.add_argument("--workers", type=int, default=2, help="--ray: actors, one model each (default 2)")
    p.add_argument("--_mem-child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not cuda:
        p.error(f"--device {args.device}: CUDA is not available on this machine")
    if args.docs is None:
        args.docs = 1000 if args.device.startswith("cuda") else 30
    for name in ("docs", "batch_tokens", "reps", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.n_sims < 1:
        p.error(f"--n-sims must be >= 1, got {args.n_sims}")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args._mem_child is not None:
        memory_child(args)
        return
    model = load(args)
    name = f"tiny_model('gpt2', n_ctx={TINY_N_CTX})" if args.tiny else args.model
    docs, repeated = documents(args.docs, args.corpus)
    print(
        f"{name} on {args.device} ({args.threads} thread{'s' * (args.threads > 1)}), {len(docs)} documents of "
        f"{args.corpus!r}{' (corpus repeated under fresh ids)' if repeated else ''}, batch_tokens={args.batch_tokens}, "
        f"space={args.space}; median of {args.reps} interleaved runs"
    )
    if not args.no_throughput:
        rows = throughput(model, docs, args)
        n = next(iter(rows.values()))["tokens"]
        print(f"\n1. Throughput over {n} tokens (ratio = plain time / variant time; run_corpus target >= 0.9)")
        print(f"{'variant':34s} {'seconds':>9s} {'tokens/s':>10s} {'ratio to plain':>15s}")
        for k, r in rows.items():
            print(f"{k:34s} {r['seconds']:9.2f} {r['tokens_s']:10.0f} {r['ratio']:15.2f}")
    if args.ray:
        ray_engine(docs, args)
    if args.no_memory:
        return
    small, large = args.mem_docs
    variants = {}
    if args.allocators in ("both", "default") or not sys.platform.startswith("linux"):
        variants["default allocator"] = memory(args)
    if args.allocators in ("both", "fixed") and sys.platform.startswith("linux"):
        variants["MALLOC_MMAP_THRESHOLD_=64 KiB"] = memory(args, FIXED_MMAP)
    how = next(iter(variants.values()))[small]["how"]
    print(f"\n2. Peak RSS growth of run_corpus, fresh subprocess each ({how}; target: ratio within 10 %)")
    print(f"{'allocator':30s} {'docs':>5s} {'tokens':>7s} {'extra peak RSS (MiB)':>21s} {'GPU (MiB)':>10s}")
    for label, mem in variants.items():
        for k in (small, large):
            gpu = mem[k].get("extra_gpu_peak_mib")
            gpu_s = f"{gpu:10.1f}" if gpu is not None else f"{'-':>10s}"
            print(f"{label:30s} {k:5d} {mem[k]['tokens']:7d} {mem[k]['extra_peak_mib']:21.1f} {gpu_s}")
    for label, mem in variants.items():
        line = f"ratio {large} / {small} documents, {label}: RSS {_ratio(mem[large]['extra_peak_mib'], mem[small]['extra_peak_mib']):.2f}"
        if "extra_gpu_peak_mib" in mem[small]:
            line += f", GPU {_ratio(mem[large]['extra_gpu_peak_mib'], mem[small]['extra_gpu_peak_mib']):.2f}"
        print(line)


if __name__ == "__main__":
    main()
