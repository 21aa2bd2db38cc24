"""Trajectory capture cost on smollm2-135m: tlgeom vs a plain forward pass and run_with_cache.

Prints wall-time ratios measured side by side in one run (interleaved repeats, median), and the
peak RSS growth of each variant measured in a fresh subprocess (VmHWM reset via
/proc/self/clear_refs after loading and warm-up). No absolute time is a claim:
these machines are noisy, ratios are what to read.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

VARIANTS = ["forward", "record_trajectories", "stream", "run_with_cache_resid", "run_with_cache_all"]

CHILD = r"""
import json, sys, torch, tlgeom
from tlgeom.data import PARAGRAPH
variant = sys.argv[1]
model = tlgeom.load_model("smollm2-135m")
toks = model.to_tokens(PARAGRAPH)
torch.set_grad_enabled(False)
model(toks, return_type=None)                    # warm up
import gc; gc.collect()
def status_kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key): return int(line.split()[1])
open("/proc/self/clear_refs", "w").write("5")   # reset the peak-RSS watermark (VmHWM)
before = status_kib("VmRSS")
names = [f"blocks.{l}.hook_resid_post" for l in range(30)] + ["blocks.0.hook_resid_pre"]
if variant == "forward":
    out = model(toks, return_type=None)
elif variant == "record_trajectories":
    out = tlgeom.record_trajectories(model, toks)
elif variant == "stream":
    out = tlgeom.stream(model, toks)
elif variant == "run_with_cache_resid":
    out = model.run_with_cache(toks, names_filter=names, return_type=None)
else:
    out = model.run_with_cache(toks, return_type=None)
print(json.dumps({"extra_peak_mib": (status_kib("VmHWM") - before) / 1024}))
"""


def timed(fn, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main(reps: int = 7) -> None:
    import torch

    import tlgeom
    from tlgeom.data import PARAGRAPH

    torch.set_grad_enabled(False)
    model = tlgeom.load_model("smollm2-135m")
    toks = model.to_tokens(PARAGRAPH)
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(30)]
    fns = {
        "forward": lambda: model(toks, return_type=None),
        "record_trajectories": lambda: tlgeom.record_trajectories(model, toks),
        "stream": lambda: tlgeom.stream(model, toks),
        "run_with_cache_resid": lambda: model.run_with_cache(toks, names_filter=names, return_type=None),
        "run_with_cache_all": lambda: model.run_with_cache(toks, return_type=None),
    }
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(reps):  # interleave so drift hits every variant alike
        for k, f in fns.items():
            times[k] += timed(f, 1)
    base = statistics.median(times["forward"])
    print(f"smollm2-135m, {toks.shape[1]} tokens, median of {reps} interleaved runs")
    print(f"{'variant':24s} {'wall / forward':>15s} {'extra peak RSS (MiB)':>22s}")
    for k in VARIANTS:
        mem = json.loads(
            subprocess.run([sys.executable, "-c", CHILD, k], capture_output=True, text=True, check=True)
            .stdout.strip()
            .splitlines()[-1]
        )["extra_peak_mib"]
        print(f"{k:24s} {statistics.median(times[k]) / base:15.2f} {mem:22.1f}")


if __name__ == "__main__":
    main()
