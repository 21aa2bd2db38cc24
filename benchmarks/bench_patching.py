"""Patching attribution on smollm2-135m: tlgeom's batched sweep vs TransformerLens' loop; memory.

Side by side in one run (read the ratios; these 2-core machines are shared and noisy):

1. Speed, full ``resid_pre`` sweep (30 layers × every position) of a 12-token pair:
   * TransformerLens: ``transformer_lens.patching.get_act_patch_resid_pre`` (one forward pass per
     (layer, position), logits included) plus the clean ``run_with_cache`` it needs. To keep the
     run bounded the loop is *timed on TL_LAYERS evenly spaced layers and extrapolated* to all 30
     layers (every pass costs the same: same tokens, one hook); the output says so.
   * tlgeom ``patch_attribution``: batched copies (``batch_size`` from the sequence length),
     once with ``prune=False`` (every cell run: the gain from batching alone) and once with the
     default pruning (cells that are exactly 0 — after the target in a decoder, or where clean
     and edited activations are equal — are not run; the run is truncated after the target).
   Both compute the same metric; the values are compared on the timed cells.
2. Memory: a 60-token pair swept in a fresh subprocess (model load included); peak RSS is read
   from ``/proc/self/status`` (VmHWM). Peak memory is set by one batch (``batch_size`` × 60
   tokens), not by the number of batches, so by default the child sweeps MEM_LAYERS layers
   (several full batches); ``--full-mem`` sweeps all 30 (a few minutes on this CPU).

Usage: ``python benchmarks/bench_patching.py [--threads 1] [--tl-layers 3] [--full-mem]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import torch

CLEAN = "The old fisherman slowly walked down to the river bank."
EDITED = "The old fisherman slowly walked down to the savings bank."
LONG_CLEAN = (
    "The river was quiet this morning, and after a long and peaceful walk past the old stone mill, "
    "the broken wooden fence, the tall green reeds, the little white chapel and a family of sleeping "
    "ducks, the tired old fisherman finally sat down to rest for a little while on the soft grassy bank"
)
MEM_LAYERS = [10, 20]
LIMIT_GIB = 2.0


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def vm_hwm_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def vm_rss_gib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 2**20
    return float("nan")


def memory_child(full: bool, threads: int) -> None:
    torch.set_num_threads(threads)
    import tlgeom
    from tlgeom.experiments.patching import patch_attribution
    from tlgeom.models import _compat

    model = tlgeom.load_model("smollm2-135m")
    after_load, hwm_load = vm_rss_gib(), vm_hwm_gib()
    edited = LONG_CLEAN.replace("The river", "The market", 1)
    n_tok = _compat.tokenize(model, LONG_CLEAN)[0].shape[1]
    layers = None if full else MEM_LAYERS
    t = time.perf_counter()
    res = patch_attribution(model, LONG_CLEAN, edited, "bank", layers=layers, progress=False)
    print(
        json.dumps(
            {
                "tokens": n_tok,
                "batch_size": res.batch_size,
                "n_batches": res.n_batches,
                "n_run": res.n_run,
                "layers": len(res.layers),
                "seconds": time.perf_counter() - t,
                "rss_after_load_gib": after_load,
                "hwm_after_load_gib": hwm_load,
                "peak_rss_gib": vm_hwm_gib(),
            }
        )
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared 2-core machine 2 threads can run 20x slower)",
    )
    ap.add_argument("--tl-layers", type=int, default=3, help="layers on which TransformerLens' loop is timed")
    ap.add_argument("--full-mem", action="store_true", help="memory check over all 30 layers")
    ap.add_argument("--mem-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mem_child:
        return memory_child(args.full_mem, args.threads)

    torch.set_num_threads(args.threads)
    import pandas as pd
    from transformer_lens.patching import get_act_patch_resid_pre

    import tlgeom
    from tlgeom.experiments.patching import MAX_BATCH, TOKEN_BUDGET, patch_attribution, restored_fraction
    from tlgeom.models import _compat

    model = tlgeom.load_model("smollm2-135m")
    info = _compat.check_model(model)
    final = _compat.point_hook_names(model, "resid", info)[-1]
    ct, _ = _compat.tokenize(model, CLEAN, info)
    et, _ = _compat.tokenize(model, EDITED, info)
    L, P = model.cfg.n_layers, et.shape[1]
    tlgeom.record_trajectories(model, CLEAN)  # warm-up
    print(
        f"smollm2-135m, {P}-token pair, torch threads {torch.get_num_threads()}; "
        f"target ' bank', edit 'river' → 'savings'\n"
    )

    pruned, tp, cp = timed(lambda: patch_attribution(model, CLEAN, EDITED, "bank", progress=False))
    full, tf, cf = timed(lambda: patch_attribution(model, CLEAN, EDITED, "bank", prune=False, progress=False))

    tl_layers = sorted({round(i * (L - 1) / max(args.tl_layers - 1, 1)) for i in range(args.tl_layers)})
    df = pd.DataFrame([(l, p) for l in tl_layers for p in range(P)], columns=["layer", "pos"])
    (_, cache), tc, cc = timed(lambda: model.run_with_cache(ct))
    grab = {}

    def cap(act, hook):
        grab["x"] = act[0, pruned.target_pos].detach()
        return act

    def metric(logits):
        return restored_fraction(grab["x"], pruned.clean_final, pruned.edited_final)

    import contextlib
    import io

    with model.hooks(fwd_hooks=[(final, cap)]), contextlib.redirect_stderr(io.StringIO()):  # silence tqdm
        ref, tt, ct_ = timed(
            lambda: get_act_patch_resid_pre(model, et, cache, metric, index_axis_names=None, index_df=df)
        )
    per_pass_w, per_pass_c = tt / len(df), ct_ / len(df)
    tl_full_w, tl_full_c = tc + per_pass_w * L * P, cc + per_pass_c * L * P
    li, pi = torch.tensor(df.layer.tolist()), torch.tensor(df.pos.tolist())
    err_full = float((full.values[li, pi] - ref.double()).abs().max())
    err_pruned = float((pruned.values[li, pi] - ref.double()).abs().max())

    rows = [
        (
            f"TransformerLens loop (timed on layers {tl_layers}, x{L / len(tl_layers):.1f})",
            L * P,
            L * P,
            tl_full_w,
            tl_full_c,
        ),
        ("tlgeom batched, prune=False", full.n_run, full.n_batches, tf, cf),
        ("tlgeom batched, pruned (default)", pruned.n_run, pruned.n_batches, tp, cp),
    ]
    print(f"{'full resid_pre sweep':<58} {'cells run':>9} {'passes':>7} {'wall s':>8} {'cpu s':>8} {'speed-up':>9}")
    for name, cells, passes, w, c in rows:
        print(f"{name:<58} {cells:>9} {passes:>7} {w:>8.2f} {c:>8.2f} {tl_full_w / w:>8.1f}x")
    print(
        f"\nTransformerLens per pass: {per_pass_w * 1e3:.0f} ms wall (clean cache {tc:.2f} s); "
        f"tlgeom batch size {full.batch_size} (= min({MAX_BATCH}, {TOKEN_BUDGET} // {P} tokens)); "
        f"pruned run truncated to {pruned.target_pos + 1} tokens"
    )
    print(
        f"agreement with get_act_patch_resid_pre on the {len(df)} timed cells: max |Δ| = {err_full:.1e} "
        f"(prune=False), {err_pruned:.1e} (pruned)"
    )
    verdict = "meets" if tl_full_w / tp >= 5 else "does NOT meet"
    print(
        f"speed-up of the default sweep: {tl_full_w / tp:.1f}x wall ({tl_full_c / cp:.1f}x CPU) -> {verdict} the 5x target; "
        f"batching alone: {tl_full_w / tf:.1f}x wall"
    )

    print("\nmemory: 60-token pair in a fresh subprocess (model load included) ...")
    cmd = [sys.executable, __file__, "--mem-child", "--threads", str(args.threads)] + (
        ["--full-mem"] if args.full_mem else []
    )
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    line = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not line:
        print("memory child failed:\n" + out.stderr[-2000:])
        return
    m = json.loads(line[-1])
    verdict = "under" if m["peak_rss_gib"] < LIMIT_GIB else "OVER"
    scope = (
        "all 30 layers"
        if args.full_mem
        else (f"layers {MEM_LAYERS} (peak memory is one batch's; --full-mem sweeps all 30)")
    )
    print(
        f"  {m['tokens']} tokens, batch size {m['batch_size']}, {m['n_run']} cells in {m['n_batches']} batches "
        f"over {scope}, {m['seconds']:.1f} s"
    )
    print(
        f"  RSS after loading the model {m['rss_after_load_gib']:.2f} GiB (peak during load "
        f"{m['hwm_after_load_gib']:.2f}); peak RSS (VmHWM) {m['peak_rss_gib']:.2f} GiB -> {verdict} {LIMIT_GIB} GiB"
    )


if __name__ == "__main__":
    main()
