"""QK/OV circuits on smollm2-135m: factored (tlgeom) vs forming a dense d×d matrix per head.

Side by side in one run (ratios are what to read; these 2-core machines are shared and noisy):

1. The key-value noun probe (100 nouns, every head, top-5 keys and value tokens):
   * factored (``tlgeom.experiments.circuits.noun_probe``): keys as ``(q W_Q)(LN(E) W_K)ᵀ`` with ``LN(E) W_K``
     once per key/value head (grouped-query heads share it), value tokens as one GEMM over heads;
   * dense: form ``W_QK = W_Q W_Kᵀ/√d_head`` and ``W_OV = W_V W_O`` (576 × 576) per head, then
     ``q W_QK LN(E)ᵀ`` and ``q W_OV Eᵀ``.
   Both on the same ``LAYERS`` (dense is slow), then the factored probe on all 30 layers (the
   "under a minute" claim): wall and CPU seconds.
2. The SVD of W_QK for every head of those layers: ``FactoredMatrix.svd`` vs ``torch.linalg.svd``
   of the dense d × d matrix.
The dense results are checked against the factored ones (same top-1 tokens, scores to 1e-4).
"""

from __future__ import annotations

import time

import torch

import tlgeom
from tlgeom.experiments.circuits import _factors, factored_svd, load_nouns, noun_probe, single_token_words
from tlgeom.geometry.sphere import apply_norm
from tlgeom.models.conventions import attention_input_norm

LAYERS = [0, 10, 20]
K = 5


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def dense_probe(model, ids, layers, dtype=torch.float32):
    Aq, Bk = _factors(model, "QK")
    Av, Bo = _factors(model, "OV")
    E = model.W_E.detach().to(dtype)
    out = []
    for l in layers:
        norm = attention_input_norm(model, l)
        lnE = apply_norm(model.W_E.detach(), norm.kind, norm.gamma, norm.beta, norm.eps).to(dtype)
        q = lnE[ids]
        for h in range(model.cfg.n_heads):
            W_QK = (Aq[l, h] @ Bk[l, h]).to(dtype)  # d × d
            W_OV = (Av[l, h] @ Bo[l, h]).to(dtype)
            keys = (q @ W_QK @ lnE.T).topk(K, dim=-1)
            vals = (q @ W_OV @ E.T).topk(K, dim=-1)
            out.append((keys, vals))
    return out


def main():
    torch.set_num_threads(2)
    model = tlgeom.load_model("smollm2-135m")
    found = single_token_words(model, load_nouns())
    ids = torch.tensor([i for _, i, _ in found])
    print(
        f"smollm2-135m: {len(found)} single-token nouns, {model.cfg.n_heads} query heads / "
        f"{model.cfg.n_key_value_heads} key-value heads, d_model {model.cfg.d_model}, vocab {model.cfg.d_vocab}"
    )
    noun_probe(model, layers=[0], k=K)  # warm-up
    fac, fw, fc = timed(lambda: noun_probe(model, layers=LAYERS, k=K))
    den, dw, dc = timed(lambda: dense_probe(model, ids, LAYERS))
    # the same answers
    j = 0
    worst = 0.0
    for i, _ in enumerate(LAYERS):
        for h in range(model.cfg.n_heads):
            keys, vals = den[j]
            j += 1
            assert torch.equal(keys.indices[:, 0], fac.key_ids[i, h, :, 0])
            assert torch.equal(vals.indices[:, 0], fac.value_ids[i, h, :, 0])
            worst = max(worst, float(((keys.values - fac.key_scores[i, h]).abs() / keys.values.abs()).max()))
    print(f"\n1. noun probe on layers {LAYERS} (all heads), float32; dense agrees (top-1 equal, scores to {worst:.1e})")
    print(f"   {'':10s} {'wall s':>8s} {'cpu s':>8s}")
    print(f"   {'factored':10s} {fw:8.2f} {fc:8.2f}")
    print(f"   {'dense d×d':10s} {dw:8.2f} {dc:8.2f}")
    print(f"   dense / factored: wall ×{dw / fw:.2f}, cpu ×{dc / fc:.2f}")
    full, aw, ac = timed(lambda: noun_probe(model, k=K))
    print(
        f"   factored, all {model.cfg.n_layers} layers: wall {aw:.1f} s, cpu {ac:.1f} s "
        f"({'under' if aw < 60 else 'OVER'} a minute of wall time on this machine)"
    )

    A, B = _factors(model, "QK")
    A, B = A[LAYERS], B[LAYERS]
    (U, S, V), sw, sc = timed(lambda: factored_svd(A, B))
    dense = A @ B
    (_, S2, _), tw, tc = timed(lambda: torch.linalg.svd(dense))
    err = float(((S - S2[..., : S.shape[-1]]).abs() / S2[..., :1]).max())
    rec = float(
        (((U * S[..., None, :]) @ V.transpose(-1, -2) - dense).norm(dim=(-2, -1)) / dense.norm(dim=(-2, -1))).max()
    )
    print(
        f"\n2. SVD of W_QK, {len(LAYERS) * model.cfg.n_heads} heads, float64 "
        f"(singular values agree to {err:.1e}; reconstruction {rec:.1e})"
    )
    print(
        f"   FactoredMatrix.svd: wall {sw:.2f} s, cpu {sc:.2f} s;  dense torch.linalg.svd: wall {tw:.2f} s, cpu {tc:.2f} s"
    )
    print(f"   dense / factored: wall ×{tw / sw:.1f}, cpu ×{tc / sc:.1f}")


if __name__ == "__main__":
    main()
