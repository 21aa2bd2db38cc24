"""Benchmark: vectorised Christoffel symbols vs a triple loop of scalar autograd calls; the pullback
metric of a smollm2 layer map at k = 8 with no d_model × d_model tensor (peak memory printed).

Run: .venv/bin/python benchmarks/bench_riemann.py
"""

from __future__ import annotations

import resource
import time
import weakref

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

import tlgeom.experiments.riemann as ER
import tlgeom.geometry.riemann as R

torch.set_num_threads(2)
DIM = 8


def make_metric(dim: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(dim * dim, dim, generator=g, dtype=torch.float64) / dim

    def metric(x):  # a smooth positive-definite metric on R^dim
        A = torch.tanh(W @ x).reshape(dim, dim)
        return torch.eye(dim, dtype=x.dtype) + A @ A.T

    return metric


def christoffel_loop(metric, x):
    """The code sketch of the 002 review: three scalar autograd.grad calls per (k, i, j)."""
    x = x.clone().requires_grad_(True)
    g = metric(x)
    g_inv = torch.linalg.inv(g)
    dim = x.shape[0]
    Gamma = torch.zeros((dim, dim, dim), dtype=x.dtype)
    for k in range(dim):
        for i in range(dim):
            for j in range(dim):
                # the sketch's three calls per (k, i, j), with its index placement corrected: it
                # sums ∂_k g_ij + ∂_j g_ik − ∂_i g_jk (= 2Γ_{i,kj}, not Γ_{k,ij}) against g_inv[k, :]
                dg_jk_dxi = torch.autograd.grad(g[j, k], x, create_graph=True)[0][i]
                dg_ik_dxj = torch.autograd.grad(g[i, k], x, create_graph=True)[0][j]
                dg_ij_dxk = torch.autograd.grad(g[i, j], x, create_graph=True)[0][k]
                Gamma[k, i, j] = 0.5 * (dg_jk_dxi + dg_ik_dxj - dg_ij_dxk)  # Γ_{k,ij} (lowered)
    return torch.einsum("kl,lij->kij", g_inv, Gamma).detach()


class MemoryTracker(TorchDispatchMode):
    """Tracks every tensor an op allocates: live bytes (peak) and the largest new tensor's shape."""

    def __init__(self):
        super().__init__()
        self.live = 0
        self.peak = 0
        self.largest = (0, ())
        self.square_dd = []

    def _free(self, nbytes):
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor) and not t._is_view():
                nb = t.numel() * t.element_size()
                self.live += nb
                self.peak = max(self.peak, self.live)
                weakref.finalize(t, self._free, nb)
                if t.numel() > self.largest[0]:
                    self.largest = (t.numel(), tuple(t.shape))
                if sum(s == D_MODEL for s in t.shape) >= 2:
                    self.square_dd.append((str(func), tuple(t.shape)))
        return out


D_MODEL = 10**9


def main():
    global D_MODEL
    # 1. Christoffel symbols at chart dimension 8
    metric = make_metric(DIM)
    x = torch.linspace(-0.5, 0.5, DIM, dtype=torch.float64)
    t0 = time.perf_counter()
    G_loop = christoffel_loop(metric, x)
    t_loop = time.perf_counter() - t0
    R.christoffel_symbols(metric, x)  # warm-up (torch.func tracing)
    reps = 20
    t0 = time.perf_counter()
    for _ in range(reps):
        G_vec = R.christoffel_symbols(metric, x)
    t_vec = (time.perf_counter() - t0) / reps
    err = (G_vec - G_loop).abs().max().item()
    print(f"Christoffel symbols, chart dim {DIM} (float64), one point:")
    print(f"  triple loop of scalar autograd.grad ({3 * DIM**3} calls): {t_loop * 1e3:9.1f} ms")
    print(f"  tlgeom.christoffel_symbols (jacrev):             {t_vec * 1e3:9.2f} ms")
    print(f"  speed-up {t_loop / t_vec:7.0f}x   max |ΔΓ| = {err:.1e}")
    xb = torch.randn(64, DIM, dtype=torch.float64) * 0.3
    t0 = time.perf_counter()
    R.christoffel_symbols(metric, xb)
    t_b = time.perf_counter() - t0
    print(
        f"  batch of 64 points in one vmapped call: {t_b * 1e3:.1f} ms ({t_loop * 64 / t_b:.0f}x vs looping the loop)"
    )

    # 2. Pullback metric of a smollm2 layer map at k = 8, no d_model × d_model tensor
    import tlgeom
    from tlgeom.data import PARAGRAPH

    model = tlgeom.load_model("smollm2-135m")
    D_MODEL = model.cfg.d_model
    toks = model.to_tokens(PARAGRAPH)[:, :100]
    chart = ER.model_chart(model, toks, pos=60, l0=10, l1=11, basis="embedding", k=8)
    chart.metric()  # warm-up
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracker = MemoryTracker()
    t0 = time.perf_counter()
    with tracker:
        g = chart.metric()
    t_m = time.perf_counter() - t0
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    eig = torch.linalg.eigvalsh(g)
    dd = D_MODEL * D_MODEL * 8
    print("\nPullback metric of smollm2-135m, token 60 of a 100-token paragraph, point 10 -> 11 (block 10), k = 8:")
    print(f"  time {t_m:.2f} s (8 JVPs as one batched forward pass with dual numbers, blocks 0-10)")
    print(
        f"  peak live tensor memory during the call: {tracker.peak / 2**20:.1f} MiB "
        f"(process max-RSS growth {max(rss1 - rss0, 0) / 1024:.1f} MiB)"
    )
    print(f"  largest tensor allocated: {tracker.largest[1]} ({tracker.largest[0] * 4 / 2**20:.1f} MiB at 4 B)")
    print(
        f"  tensors with two dims == d_model={D_MODEL} allocated: {len(tracker.square_dd)} "
        f"(a d×d float64 matrix would be {dd / 2**20:.1f} MiB)"
    )
    print(
        f"  g eigenvalues: min {eig.min():.3g}, max {eig.max():.3g} (symmetric positive definite: {bool(eig.min() > 0)})"
    )


if __name__ == "__main__":
    main()
