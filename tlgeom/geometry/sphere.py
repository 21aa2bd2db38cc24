"""The LayerNorm hypersphere (Traveling Words, Molina 2023, §3): where normalisation puts tokens.

A normalisation layer maps a residual vector ``x ∈ R^d`` to ``y = γ ⊙ n + β`` with

* **LayerNorm**: ``n = (x − μ(x)·1) / sqrt(σ²(x) + ε)``, ``μ`` the mean and ``σ²`` the (biased)
  variance of x's d coordinates. Without ε, ``‖n‖ = √d`` and ``⟨n, 1⟩ = 0``: n lies on the sphere
  of radius √d inside the hyperplane ⊥ 1 (a (d−2)-sphere).
* **RMSNorm**: ``n = x / sqrt(mean(x²) + ε)``: ``‖n‖ = √d`` but no hyperplane constraint.

With ε the norm is slightly short: ``‖n‖ = √d · sqrt(1 − ε/s²)`` exactly, where
``s = sqrt(σ² + ε)`` (LN) or ``sqrt(mean(x²) + ε)`` (RMS) is what TransformerLens records in
``hook_scale``. The gain γ and bias β then turn the sphere into an ellipsoid with semi-axes
``√d·|γ_i|`` (LayerNorm: restricted to the hyperplane) centred at β.

TransformerLens records ``n`` in ``*.hook_normalized`` (before γ, in every API) and ``s`` in
``*.hook_scale``; :func:`sphere_report` reads them at every normalisation layer.

Which layers are read:

* decoders (GPT-2 style LayerNorm, Llama style RMSNorm): ``blocks.L.ln1``, ``blocks.L.ln2``,
  ``ln_final``;
* post-LN BERT encoders: the embedding LayerNorm (Bridge ``embed_ln``, HookedEncoder
  ``embed.ln``), ``blocks.L.ln1`` (after attention) and ``blocks.L.ln2`` (after the MLP). The
  Bridge's ``ln_final`` / HookedEncoder's ``mlm_head.ln`` belong to the masked-LM head (random
  for MiniLM), not to the encoder, and are left out.

Processing (``tlgeom.load_model(..., processed=True)`` calls ``enable_compatibility_mode``):

* ``fold_ln`` folds every γ (and β) into the weights that read the normalised vector, so the
  norm modules have γ = 1, β = 0: the report's ellipsoid columns then show the identity (axis
  ratio 1, offset 0) — the ellipsoid has moved into W_Q/W_K/W_V/W_in/W_U, it has not gone.
* ``center_writing_weights`` (LayerNorm models only) makes every write into the residual stream
  mean-free, so the *raw* residual has no component along 1 (``raw_ones_cos`` ≈ 0) and smaller
  norms. ``hook_normalized`` is unchanged (LayerNorm is invariant to shifts along 1).
* RMSNorm models (smollm2) skip centering; only γ is folded.

All statistics are computed in float64 on valid (non-padding) tokens.
"""

from __future__ import annotations

import math
import re

import torch
from jaxtyping import Float

from tlgeom._errors import bad_arg
from tlgeom.geometry.curvature import normalize_states

NORM_KINDS = ("LayerNorm", "RMSNorm")
EMBEDDING_VARIANTS = ("original", "centred", "scaled", "centred & scaled")

# normalisation modules that belong to the residual stream (not q/k norms, not the MLM head)
#: hook-point names of the residual stream's normalisations (group 2: the block, group 3: ln1/ln2)
NORM_RE = re.compile(r"^(embed_ln|embed\.ln|blocks\.(\d+)\.ln([12])(_post)?|ln_final)$")


# normalisation modules that belong to the residual stream (not q/k norms, not the MLM head)


# ----------------------------------------------------------------------------- pure functions

#: Relative tolerance on the ε-corrected radius, per activation dtype: a few hundred units in the
#: last place of a d ≈ 1000 norm (float rounding of the normalisation and of the norm itself).
SPHERE_TOL = {"float64": 1e-10, "float32": 1e-5, "bfloat16": 3e-2, "float16": 5e-3}


def _check_kind(kind: str) -> None:
    if kind not in NORM_KINDS:
        raise bad_arg("kind", kind, f"one of {NORM_KINDS}")


def normalize(
    x: Float[torch.Tensor, "... d_model"], kind: str = "LayerNorm", eps: float = 0.0
) -> Float[torch.Tensor, "... d_model"]:
    """The normalised vector n before the gain (float64).

    LayerNorm: ``n = (x − mean(x)) / sqrt(var(x) + ε)``; RMSNorm: ``n = x / sqrt(mean(x²) + ε)``
    (variance biased, over the last dimension).
    """
    _check_kind(kind)
    return normalize_states(x, kind, eps)


def apply_norm(
    x: Float[torch.Tensor, "... d_model"],
    kind: str = "LayerNorm",
    gamma: torch.Tensor | None = None,
    beta: torch.Tensor | None = None,
    eps: float = 0.0,
) -> Float[torch.Tensor, "... d_model"]:
    """``γ ⊙ normalize(x) + β`` in float64 (γ = 1, β = 0 when None)."""
    n = normalize(x, kind, eps)
    if gamma is not None:
        n = n * gamma.double().to(n.device)
    if beta is not None:
        n = n + beta.double().to(n.device)
    return n


def expected_radius(scale: torch.Tensor, d_model: int, eps: float) -> torch.Tensor:
    """``√d · sqrt(1 − ε/s²)``: the exact norm of a normalised vector whose ``hook_scale`` is s."""
    s2 = scale.double().pow(2)
    return math.sqrt(d_model) * (1.0 - eps / s2).clamp_min(0).sqrt()


def ellipsoid_geometry(
    gamma: Float[torch.Tensor, " d_model"],
    beta: Float[torch.Tensor, " d_model"] | None,
) -> dict[str, float]:
    """How ``y = γ ⊙ n + β`` deforms the √d sphere.

    Returns:
        ``gamma_mean``, ``gamma_std``, ``gamma_min`` / ``gamma_max`` (of γ itself);
        ``axis_ratio = max|γ_i| / min|γ_i|`` (semi-axes are √d·|γ_i|: 1 = still a sphere; one
        near-zero γ_i makes it huge), ``axis_ratio_p95_p5`` (95th over 5th percentile of |γ|,
        robust to a few collapsed axes), ``gamma_cv = std|γ| / mean|γ|``;
        ``beta_norm = ‖β‖`` (the displacement of the centre);
        ``offset_ratio = ‖β‖ / (√d · rms(γ))`` (displacement over the mean semi-axis).
    """
    g = gamma.double()
    b = torch.zeros_like(g) if beta is None else beta.double()
    a = g.abs()
    d = g.numel()
    rms = a.pow(2).mean().sqrt()
    q = torch.quantile(a, torch.tensor([0.05, 0.95], dtype=torch.float64))
    return {
        "gamma_mean": float(g.mean()),
        "gamma_std": float(g.std(unbiased=False)),
        "gamma_min": float(g.min()),
        "gamma_max": float(g.max()),
        "axis_ratio": float(a.max() / a.min()) if float(a.min()) > 0 else math.inf,
        "axis_ratio_p95_p5": float(q[1] / q[0]) if float(q[0]) > 0 else math.inf,
        "gamma_cv": float(a.std(unbiased=False) / a.mean()) if float(a.mean()) > 0 else math.inf,
        "beta_norm": float(b.norm()),
        "offset_ratio": float(b.norm() / (math.sqrt(d) * rms)) if float(rms) > 0 else math.inf,
    }


def embedding_check(
    W_E: Float[torch.Tensor, "d_vocab d_model"], kind: str = "LayerNorm", eps: float = 0.0
) -> dict[str, dict[str, float]]:
    """The paper's embedding-matrix check: how close is E to its own normalisation?

    Reference ``R = normalize(E)`` (no γ, β). Variants, as in the paper's ``word_embeddings.py``:
    ``original`` E; ``centred`` ``E − ē`` (ē = the mean embedding over the vocabulary);
    ``scaled`` ``E · √d / mean_t ‖e_t‖``; ``centred & scaled`` ``(E − ē) · √d / mean_t ‖e_t‖``.
    For each: L2 distance ``‖v_t − r_t‖`` and cosine distance ``1 − cos(v_t, r_t)`` over tokens
    (mean and std), and the L2 mean relative to the radius √d.

    Closed forms: for RMSNorm, ``original`` and ``scaled`` have cosine distance 0 (RMSNorm only
    rescales each row). For LayerNorm, rows that are already mean-free with norm √d give 0
    everywhere.
    """
    _check_kind(kind)
    if not isinstance(W_E, torch.Tensor) or W_E.dim() != 2:
        raise bad_arg(
            "W_E",
            W_E if not isinstance(W_E, torch.Tensor) else f"Tensor{tuple(W_E.shape)}",
            "a [d_vocab, d_model] tensor",
        )
    E = W_E.detach().double()
    d = E.shape[-1]
    R = normalize(E, kind, eps)
    factor = math.sqrt(d) / E.norm(dim=-1).mean()
    centred = E - E.mean(0, keepdim=True)
    out = {}
    r_norm = R.norm(dim=-1)
    cos_of = {}  # cosine is scale-invariant: "scaled" shares "original"'s, "centred & scaled" "centred"'s
    for base in (E, centred):
        cos_of[id(base)] = 1 - (base * R).sum(-1) / (base.norm(dim=-1) * r_norm).clamp_min(1e-300)
    for name, V, base in zip(EMBEDDING_VARIANTS, (E, centred, E * factor, centred * factor), (E, centred, E, centred)):
        l2 = (V - R).norm(dim=-1)
        cos = cos_of[id(base)]
        out[name] = {
            "l2_mean": float(l2.mean()),
            "l2_std": float(l2.std()),
            "l2_rel_radius": float(l2.mean() / math.sqrt(d)),
            "cos_dist_mean": float(cos.mean()),
            "cos_dist_std": float(cos.std()),
        }
    return out
