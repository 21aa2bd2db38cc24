"""Curvature costs, side by side in one run (ratios are what to read; these machines are noisy).

1. The streamed curvature landscape of the ~160-token paragraph on smollm2-135m vs a plain
   forward pass, with run_with_cache of every hook as the foil: wall-time ratio (interleaved
   repeats, median) and peak RSS growth during the call, each variant in a fresh subprocess
   (the kernel's peak-RSS mark is reset through /proc/self/clear_refs just before the call
   and read from VmHWM after, so torch's CPU allocations are seen; tracemalloc would not).
2. 100k null walks of 30 steps in d = 576: a per-walk Python loop (timed on a subset and
   extrapolated linearly, as printed) vs the vectorised samplers: the d-dimensional walk
   (``method="direct"``), the reduced (Bartlett) walk, and ``null_statistics`` (what
   compare_to_nulls uses: angles and LTC from their exact marginals, no walk built).
3. How each vectorised sampler's time grows when sims, steps or d double.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import torch

CHILD = r"""
import json, resource, sys, torch, tlgeom
from tlgeom.data import PARAGRAPH
from tlgeom.experiments.landscape import curvature_landscape
variant = sys.argv[1]
model = tlgeom.load_model("smollm2-135m")
toks = model.to_tokens(PARAGRAPH)
torch.set_grad_enabled(False)
model(toks, return_type=None)
curvature_landscape(model, toks[0])          # warm up both paths
import gc; gc.collect()
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"): return int(line.split()[1])
def hwm_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"): return int(line.split()[1])
before = rss_kib()
open("/proc/self/clear_refs", "w").write("5")   # reset the peak-RSS mark (Linux >= 4.0) to the current RSS
if variant == "forward":
    out = model(toks, return_type=None)
elif variant == "landscape":
    out = curvature_landscape(model, toks[0])
elif variant == "landscape_normalized":
    out = curvature_landscape(model, toks[0], space="normalized")
else:
    out = model.run_with_cache(toks, return_type=None)
peak = hwm_kib()
print(json.dumps({"extra_peak_mib": max(peak - before, 0) / 1024}))
"""


def _median_time(fn, reps=1):
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def part1(reps: int = 5) -> None:
    import tlgeom
    from tlgeom.data import PARAGRAPH
    from tlgeom.experiments.landscape import curvature_landscape

    torch.set_grad_enabled(False)
    model = tlgeom.load_model("smollm2-135m")
    toks = model.to_tokens(PARAGRAPH)
    fns = {
        "forward": lambda: model(toks, return_type=None),
        "landscape": lambda: curvature_landscape(model, toks[0]),
        "landscape_normalized": lambda: curvature_landscape(model, toks[0], space="normalized"),
        "run_with_cache_all": lambda: model.run_with_cache(toks, return_type=None),
    }
    for f in fns.values():
        f()
    times = {k: [] for k in fns}
    for _ in range(reps):  # interleaved so load drift hits every variant alike
        for k, f in fns.items():
            times[k].append(_median_time(f))
    base = statistics.median(times["forward"])
    print(
        f"1. smollm2-135m, {toks.shape[1]} tokens, median of {reps} interleaved runs "
        f"(forward = {base * 1e3:.0f} ms here); targets: landscape ≤ 1.10× wall, ≤ 1.20× memory"
    )
    print(f"   {'variant':24s} {'wall / forward':>15s} {'extra peak RSS (MiB)':>22s}")
    mem = {}
    for k in fns:
        out = subprocess.run([sys.executable, "-c", CHILD, k], capture_output=True, text=True, check=True)
        mem[k] = json.loads(out.stdout.strip().splitlines()[-1])["extra_peak_mib"]
        print(f"   {k:24s} {statistics.median(times[k]) / base:15.2f} {mem[k]:22.1f}")
    print(
        "   (extra peak RSS = peak during the call − RSS just before it, after loading and a warm-up pass;"
        " the model's weights and a forward's own activations are in both; a few MiB is allocator noise)"
    )


def _loop_walks(norms: torch.Tensor, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The naive baseline: one walk at a time in R^d, then its angles and LTC."""
    from tlgeom.geometry.curvature import angle_between

    angles, ltcs = [], []
    for n in norms:  # [K]
        s = torch.randn(n.shape[0], d, dtype=torch.float64)
        s = s / s.norm(dim=-1, keepdim=True) * n[:, None]
        angles.append(angle_between(s[:-1], s[1:]))
        ltcs.append(n.sum() / s.sum(0).norm())
    return torch.stack(angles), torch.stack(ltcs)


def part2(
    n_walks: int = 100_000, K: int = 30, d: int = 576, loop_subset: int = 1000, direct_subset: int = 10_000
) -> None:
    from tlgeom.geometry.curvature import length_to_chord, turning_angles
    from tlgeom.stats.nulls import gaussian_walk, null_statistics

    torch.manual_seed(0)
    norms = torch.rand(n_walks, K, dtype=torch.float64) + 0.5
    t_loop = _median_time(lambda: _loop_walks(norms[:loop_subset], d)) * n_walks / loop_subset

    def direct(m):
        for c in range(0, m, 2000):  # chunks keep memory at ~30 MiB per 1k walks
            w = gaussian_walk(norms[c : c + 2000], 1, d, method="direct")
            turning_angles(w), length_to_chord(w)

    t_direct = _median_time(lambda: direct(direct_subset)) * n_walks / direct_subset

    def reduced():
        for c in range(0, n_walks, 20_000):
            w = gaussian_walk(norms[c : c + 20_000], 1, d)
            turning_angles(w), length_to_chord(w)

    t_reduced = _median_time(reduced)
    # null_statistics: 1000 "observed" tokens × 100 simulations = 100k walks
    x = torch.cat(
        [torch.zeros(1000, 1, d, dtype=torch.float64), torch.randn(1000, K, d, dtype=torch.float64).cumsum(1)], 1
    )

    def stats():
        null_statistics("gaussian_token", x, n_walks // 1000, seed=0)

    stats()  # warm-up
    t_stats = _median_time(stats, reps=5)
    print(f"\n2. {n_walks:,} Gaussian null walks, {K} steps, d = {d} (angles + LTC each); target ≥ 50× over the loop")
    print(f"   {'method':46s} {'seconds':>9s} {'speed-up vs loop':>17s}")
    rows = [
        (f"per-walk Python loop (timed on {loop_subset:,}, ×{n_walks // loop_subset})", t_loop),
        (f"vectorised, walks in R^{d} (timed on {direct_subset:,}, ×{n_walks // direct_subset})", t_direct),
        (f"vectorised, reduced walks in R^{min(K, d)} (Bartlett)", t_reduced),
        ("null_statistics (compare_to_nulls' sampler)", t_stats),
    ]
    for name, t in rows:
        print(f"   {name:46s} {t:9.2f} {t_loop / t:16.0f}×")


def part3(S: int = 10_000, K: int = 30, d: int = 576) -> None:
    from tlgeom.geometry.curvature import length_to_chord, turning_angles
    from tlgeom.stats.nulls import gaussian_walk, null_statistics

    def cost(method, s, k, dd):
        norms = torch.rand(s, k, dtype=torch.float64) + 0.5
        if method == "null_statistics":
            x = torch.cat(
                [torch.zeros(100, 1, dd, dtype=torch.float64), torch.randn(100, k, dd, dtype=torch.float64).cumsum(1)],
                1,
            )

            def f():
                null_statistics("gaussian_token", x, s // 100, seed=0)
        else:

            def f():
                w = gaussian_walk(norms, 1, dd, method=method)
                turning_angles(w), length_to_chord(w)

        f()
        return min(_median_time(f) for _ in range(3))

    print(f"\n3. cost growth (time ratio when one factor doubles; base {S:,} sims × {K} steps × d {d})")
    print(f"   {'sampler':18s} {'base s':>8s} {'2×sims':>8s} {'2×steps':>8s} {'2×d':>8s}   expected")
    for method, base_s, exp in (
        ("direct", S // 10, "2, 2, 2 (sims·steps·d)"),
        ("reduced", S, "2, ~4, 1 (sims·steps², d-free)"),
        ("null_statistics", S, "2, 2, 1 (sims·steps)"),
    ):
        b = cost(method, base_s, K, d)
        r = [cost(method, 2 * base_s, K, d) / b, cost(method, base_s, 2 * K, d) / b, cost(method, base_s, K, 2 * d) / b]
        label = method if method != "direct" else f"direct ({base_s:,})"
        print(f"   {label:18s} {b:8.3f} {r[0]:8.2f} {r[1]:8.2f} {r[2]:8.2f}   {exp}")


if __name__ == "__main__":
    torch.set_num_threads(min(2, torch.get_num_threads()))
    parts = sys.argv[1:] or ["1", "2", "3"]
    for p in parts:
        {"1": part1, "2": part2, "3": part3}[p]()
