"""One place for a model's architectural conventions, read from the model itself.

Every analysis that depends on how a family normalises, scales or positions its attention reads
it here, never from a guess:

* **normalisation**: the residual-stream norm layers' kind and *effective* gain. Most families
  scale by ``γ = w`` (the module's weight); Gemma 1/2/3, VaultGemma and others scale by
  ``γ = 1 + w``. The convention is *measured*: the Hugging Face module is run on a probe batch
  ``x`` and ``γ, β`` are fitted per coordinate by least squares to ``out = γ ⊙ n(x) + β`` with
  ``n(x) = x / √(mean x² + ε)`` (RMSNorm) or ``(x − mean x) / √(var x + ε)`` (LayerNorm);
  whichever of ``w`` and ``1 + w`` the fitted ``γ`` equals names the convention
  (``"rmsnorm(1+w)"``). Placement: ``"pre"`` (norm before each sublayer), ``"post"`` (after
  each sublayer only: BERT, OLMo 2/3, EXAONE 4), ``"sandwich"`` (both: Gemma 2/3).
* **attention scale**: the divisor ``s`` in ``softmax(q·k / s + mask)``, read from the Hugging
  Face attention module (``scaling`` = 1/s, ``inv_norm_factor``, ``softmax_scale``,
  ``scale_attn``) or its config (``query_pre_attn_scalar``: s = √q; ``attention_multiplier``:
  s = 1/m; GPT-Neo: s = 1), TransformerLens' ``cfg.attn_scale`` only as the last resort.
* **positions**: ``"rotary"``, ``"alibi"`` (a per-head linear bias on the scores), ``"learned"``,
  ``"relative"`` or ``"none"``.
* **attention variant**: ``"MHA"``, ``"GQA"``, ``"MQA"`` (one K/V head) or ``"MLA"`` (DeepSeek's
  low-rank latent attention, which has no per-head W_Q W_Kᵀ).
"""

from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch

from tlgeom._errors import TlgeomError
from tlgeom.models import _compat

NORM_KINDS = ("layernorm", "layernorm(1+w)", "rmsnorm", "rmsnorm(1+w)", "none")
POSITIONAL = ("rotary", "alibi", "learned", "relative", "none")
ATTENTION = ("MHA", "GQA", "MQA", "MLA")


@dataclass(frozen=True)
class Architecture:
    """A model's conventions (see the module docstring for how each is read).

    Attributes:
        family: the Hugging Face architecture (``config.architectures[0]``) or the model's class.
        model_type: the Hugging Face ``config.model_type`` ("" when there is no HF config).
        norm: one of :data:`NORM_KINDS` for the residual-stream norms.
        norm_offset: ``c`` in ``γ = c + w`` (0 or 1; NaN when the probe could not decide).
        norm_placement: ``"pre"``, ``"post"``, ``"sandwich"`` or ``"none"``.
        attn_scale: the score divisor ``s`` (``softmax(q·k / s)``); NaN when unknown.
        attn_scale_source: where ``attn_scale`` was read.
        positional: one of :data:`POSITIONAL`.
        attention: one of :data:`ATTENTION`.
        n_heads, n_kv_heads: query and key/value heads.
        softcap: attention-logit soft-capping (Gemma 2), None when absent.
        sinks: learned attention-sink logits (GPT-OSS): an extra softmax column per head.
        notes: what else an analysis must know (e.g. per-layer scale, sliding windows).
    """

    family: str
    model_type: str
    norm: str
    norm_offset: float
    norm_placement: str
    attn_scale: float
    attn_scale_source: str
    positional: str
    attention: str
    n_heads: int
    n_kv_heads: int
    softcap: float | None = None
    sinks: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def hf_model(model: Any) -> Any | None:
    """The Hugging Face model under a TransformerBridge (None for other APIs)."""
    return getattr(model, "original_model", None)


def hf_config(model: Any) -> Any | None:
    """The Hugging Face (text) config under a TransformerBridge (None for other APIs)."""
    hf = hf_model(model)
    cfg = getattr(hf, "config", None)
    if cfg is None:
        return None
    get_text = getattr(cfg, "get_text_config", None)
    return get_text() if callable(get_text) else cfg


def _original(module: Any) -> Any:
    return getattr(module, "original_component", None) or module


def _cfg_get(cfg: Any, *names: str) -> Any:
    for n in names:
        v = getattr(cfg, n, None) if cfg is not None else None
        if v is not None:
            return v
    return None


# ----------------------------------------------------------------------------- normalisation


def probe_norm(module: Any, d: int, *, seed: int = 0) -> tuple[str, torch.Tensor, torch.Tensor, float] | None:
    """Run a norm module on a probe batch and fit its effective ``γ, β`` (float64).

    ``x`` is ``64`` standard-normal rows (seeded Generator) plus a per-coordinate offset, so the
    LayerNorm and RMSNorm normalisations differ. For each kind ``n(x)``, ``γ_i, β_i`` are the
    least-squares fit of ``out[:, i] = γ_i n(x)[:, i] + β_i``; the kind with the smaller relative
    residual wins.

    Returns:
        ``(kind, γ, β, residual)`` with kind ``"LayerNorm"`` or ``"RMSNorm"``, or None when the
        module cannot be run on ``[rows, d]`` input or fits neither form (residual > 1e-3).
    """
    mod = _original(module)
    try:
        p = next(mod.parameters())
        dtype, device = p.dtype, p.device
    except StopIteration:
        dtype, device = torch.float32, torch.device("cpu")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(64, d, generator=gen, dtype=torch.float64) + torch.randn(1, d, generator=gen, dtype=torch.float64)
    eps = float(_cfg_get(mod, "eps", "variance_epsilon", "epsilon") or 1e-6)
    try:
        with torch.no_grad():
            out = mod(x.to(device, dtype))
    except Exception:  # noqa: BLE001 - any module that does not take [rows, d] is "not probeable"
        return None
    if isinstance(out, tuple):
        out = out[0]
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (64, d):
        return None
    out = out.double().cpu()
    best = None
    for kind in ("RMSNorm", "LayerNorm"):
        n = normalized(x, kind, eps)
        nm, om = n.mean(0), out.mean(0)
        var = (n - nm).pow(2).sum(0)
        gamma = ((n - nm) * (out - om)).sum(0) / var.clamp_min(1e-300)
        beta = om - gamma * nm
        if kind == "RMSNorm" and beta.abs().max() <= 1e-4 * (1 + gamma.abs().max()):
            gamma = (n * out).sum(0) / n.pow(2).sum(0)  # no bias: the through-origin fit
            beta = torch.zeros_like(gamma)
        res = float((gamma * n + beta - out).norm() / out.norm().clamp_min(1e-300))
        if best is None or res < best[3]:
            best = (kind, gamma, beta, res)
    tol = 1e-3 if dtype == torch.float32 or dtype == torch.float64 else 3e-2
    return best if best is not None and best[3] <= tol else None


def normalized(x: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    """``n(x)``: ``x / √(mean x² + ε)`` (RMSNorm) or ``(x − x̄) / √(var x + ε)`` (LayerNorm), float64
    (:func:`tlgeom.geometry.curvature.normalize_states`, the one normaliser)."""
    from tlgeom.geometry.curvature import normalize_states

    return normalize_states(x, kind, eps)


def _norm_convention(model: Any, d: int) -> tuple[str, float, list[str]]:
    """``(norm, offset, notes)`` from probing ``blocks.0.ln1`` (or the first residual norm)."""
    notes: list[str] = []
    blocks = getattr(model, "blocks", None)
    candidates = []
    if blocks is not None and len(blocks):
        for name in ("ln1", "ln2", "ln1_post", "ln2_post"):
            if hasattr(blocks[0], name):
                candidates.append(getattr(blocks[0], name))
    for name in ("ln_final", "embed_ln"):
        if hasattr(model, name):
            candidates.append(getattr(model, name))
    for mod in candidates:
        got = probe_norm(mod, d)
        if got is None:
            continue
        kind, gamma, beta, _ = got
        w = getattr(_original(mod), "weight", None)
        if not isinstance(w, torch.Tensor) or w.numel() != d:
            notes.append(f"{type(_original(mod)).__name__} has no weight of size d_model: γ measured by probe")
            return ("layernorm" if kind == "LayerNorm" else "rmsnorm"), 0.0, notes
        w = w.detach().double().cpu().reshape(-1)
        scale = 1 + w.abs().max()
        err0 = float((gamma - w).abs().max() / scale)
        err1 = float((gamma - (1 + w)).abs().max() / scale)
        if err1 < err0 and err1 < 1e-3:  # Gemma's RMSNorm, Nemotron's LayerNorm1P
            return ("layernorm(1+w)" if kind == "LayerNorm" else "rmsnorm(1+w)"), 1.0, notes
        if err0 < 1e-3:
            return ("layernorm" if kind == "LayerNorm" else "rmsnorm"), 0.0, notes
        notes.append(f"norm gain matches neither w nor 1+w (max deviation {min(err0, err1):.2g})")
        return ("layernorm" if kind == "LayerNorm" else "rmsnorm"), math.nan, notes
    if candidates:
        notes.append("the residual norm modules could not be probed on [rows, d_model] input")
        return "none", math.nan, notes
    return "none", 0.0, notes


def _placement(model: Any, encoder: bool) -> str:
    hd = model.hook_dict
    pre = "blocks.0.ln1.hook_normalized" in hd or "blocks.0.ln1.hook_out" in hd
    post = any(f"blocks.0.{n}.hook_out" in hd for n in ("ln1_post", "ln2_post"))
    if encoder:
        return "post"
    if pre and post:
        # a sandwich has both; a post-norm decoder (OLMo 2) maps its post norms onto ln1/ln2 hooks
        return "sandwich"
    hf_layer = _hf_layer0(model)
    if hf_layer is not None:
        names = [n for n, _ in hf_layer.named_children()]
        has_input = any(re.search(r"input_layernorm|ln_1|ln1|input_norm|pre_.*norm", n) for n in names)
        has_post = any(re.search(r"post_(attention|feedforward)_layernorm|post_.*norm", n) for n in names)
        if has_post and not has_input:
            return "post"
    return "pre" if pre or post else "none"


def _hf_layer0(model: Any) -> Any | None:
    blocks = getattr(model, "blocks", None)
    if blocks is None or not len(blocks):
        return None
    b0 = _original(blocks[0])
    return b0 if b0 is not blocks[0] else None


# ----------------------------------------------------------------------------- attention


def _attn_scale(model: Any, hf_cfg: Any, mt: str, d_head: int, notes: list[str]) -> tuple[float, str]:
    """The score divisor ``s`` and where it was read."""
    blocks = getattr(model, "blocks", None)
    attn = None
    if blocks is not None and len(blocks) and hasattr(blocks[0], "attn"):
        attn = _original(blocks[0].attn)
    if attn is not None and blocks is not None and attn is not getattr(blocks[0], "attn", None):
        cls = type(attn).__name__
        v = getattr(attn, "scaling", None)
        if isinstance(v, (int, float)) and v > 0:
            return 1.0 / float(v), f"{cls}.scaling"
        v = getattr(attn, "inv_norm_factor", None)
        if isinstance(v, (int, float)) and v > 0:
            return 1.0 / float(v), f"{cls}.inv_norm_factor"
        if hasattr(attn, "softmax_scale"):
            v = attn.softmax_scale
            if isinstance(v, (int, float)) and v > 0:
                return 1.0 / float(v), f"{cls}.softmax_scale"
            return math.sqrt(d_head), f"{cls}.softmax_scale=None (1/√d_head)"
        v = getattr(attn, "scale_attn", None)
        if isinstance(v, torch.Tensor) and v.numel() == 1:
            return float(v), f"{cls}.scale_attn"
        if "GPTNeo" in cls:
            return 1.0, f"{cls} (unscaled scores)"
        if hasattr(attn, "scale_attn_weights"):
            if getattr(attn, "scale_attn_by_inverse_layer_idx", False):
                notes.append("scores scaled by 1/(layer+1) on top of 1/√d_head (layer 0 given)")
            return (math.sqrt(d_head) if attn.scale_attn_weights else 1.0), f"{cls}.scale_attn_weights"
        if hasattr(attn, "scale") and isinstance(attn.scale, bool):  # OpenAI GPT
            return (math.sqrt(d_head) if attn.scale else 1.0), f"{cls}.scale"
    if hf_cfg is not None:
        v = getattr(hf_cfg, "query_pre_attn_scalar", None)
        if isinstance(v, (int, float)) and v > 0:
            return math.sqrt(float(v)), "config.query_pre_attn_scalar"
        v = getattr(hf_cfg, "attention_multiplier", None)
        if isinstance(v, (int, float)) and v > 0:
            return 1.0 / float(v), "config.attention_multiplier"
        if mt == "gpt_neo":
            return 1.0, "GPT-Neo (unscaled scores)"
        if mt in ("bert", "roberta", "gpt2", "openai-gpt", "opt", "bloom", "gpt_neox", "llama", "mistral"):
            return math.sqrt(d_head), f"{mt}: 1/√d_head"
    cfg = model.cfg
    if getattr(cfg, "use_attn_scale", True) is False:
        return 1.0, "TransformerLens cfg.use_attn_scale=False"
    s = getattr(cfg, "attn_scale", None)
    if s is not None and float(s) > 0:
        return float(s), "TransformerLens cfg.attn_scale"
    return math.sqrt(d_head), "√d_head (nothing else found)"


def _positional(model: Any, hf_cfg: Any, mt: str) -> str:
    if hf_cfg is not None:
        attn_cfg = getattr(hf_cfg, "attn_config", None)
        alibi = getattr(hf_cfg, "alibi", None)
        if isinstance(attn_cfg, dict):
            alibi = attn_cfg.get("alibi", alibi)
        elif attn_cfg is not None:
            alibi = getattr(attn_cfg, "alibi", alibi)
        if mt == "bloom" or alibi is True:
            return "alibi"
        if mt in ("t5", "mt5", "longt5", "switch_transformers"):
            return "relative"
    pe = str(getattr(model.cfg, "positional_embedding_type", "") or "").lower()
    if pe in ("rotary", "alibi"):
        return pe
    if pe in ("standard", "shortformer", "learned"):
        return "learned"
    if hf_cfg is not None and (
        _cfg_get(hf_cfg, "rope_theta", "rope_parameters", "rotary_dim", "rotary_pct", "partial_rotary_factor")
        is not None
        or str(getattr(hf_cfg, "position_embedding_type", "")) == "rotary"
    ):
        return "rotary"
    hd = model.hook_dict
    if any(k.endswith("hook_rot_q") for k in hd):
        return "rotary"
    if "hook_pos_embed" in hd or "pos_embed.hook_out" in hd:
        return "learned"
    return "none"


def _attention_variant(model: Any, hf_cfg: Any) -> tuple[str, int, int]:
    n_heads = int(_cfg_get(hf_cfg, "num_attention_heads", "n_head", "n_heads") or model.cfg.n_heads)
    if hf_cfg is not None and _cfg_get(hf_cfg, "kv_lora_rank", "q_lora_rank") is not None:
        return "MLA", n_heads, n_heads
    n_kv = _cfg_get(hf_cfg, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    if n_kv is None and hf_cfg is not None and getattr(hf_cfg, "multi_query", False):
        n_kv = 1
    if n_kv is None:
        n_kv = getattr(model.cfg, "n_key_value_heads", None) or n_heads
    n_kv = int(n_kv)
    if n_kv == n_heads:
        return "MHA", n_heads, n_kv
    return ("MQA" if n_kv == 1 else "GQA"), n_heads, n_kv


_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def architecture(model: Any) -> Architecture:
    """The conventions of ``model`` (cached per model object).

    Raises:
        TlgeomError: not a TransformerLens model.
    """
    info = _compat.check_model(model)
    try:
        return _CACHE[model]
    except (KeyError, TypeError):
        pass
    hf = hf_model(model)
    hf_cfg = hf_config(model)
    mt = str(getattr(hf_cfg, "model_type", "") or "")
    archs = getattr(getattr(hf, "config", None), "architectures", None) or []
    family = archs[0] if archs else (type(hf).__name__ if hf is not None else type(model).__name__)
    notes: list[str] = []
    norm, offset, norm_notes = _norm_convention(model, info.d_model)
    notes += norm_notes
    attention, n_heads, n_kv = _attention_variant(model, hf_cfg)
    d_head = int(getattr(model.cfg, "d_head", 0) or 0) or int(
        _cfg_get(hf_cfg, "head_dim") or info.d_model // max(n_heads, 1)
    )
    scale, source = _attn_scale(model, hf_cfg, mt, d_head, notes)
    softcap = _cfg_get(hf_cfg, "attn_logit_softcapping")
    if softcap is not None:
        notes.append(f"attention logits soft-capped: c·tanh(score/c), c={softcap}")
    if _cfg_get(hf_cfg, "sliding_window") is not None:
        notes.append(f"sliding-window attention (window {_cfg_get(hf_cfg, 'sliding_window')}) on some layers")
    blocks = getattr(model, "blocks", None)
    attn0 = _original(blocks[0].attn) if blocks is not None and len(blocks) and hasattr(blocks[0], "attn") else None
    sinks = isinstance(getattr(attn0, "sinks", None), torch.Tensor)
    if sinks:
        notes.append("learned attention sinks: each head's softmax has an extra sink logit")
    arch = Architecture(
        family=family,
        model_type=mt,
        norm=norm,
        norm_offset=offset,
        norm_placement=_placement(model, info.encoder),
        attn_scale=float(scale),
        attn_scale_source=source,
        positional=_positional(model, hf_cfg, mt),
        attention=attention,
        n_heads=n_heads,
        n_kv_heads=n_kv,
        softcap=None if softcap is None else float(softcap),
        sinks=sinks,
        notes=tuple(notes),
    )
    try:
        _CACHE[model] = arch
    except TypeError:
        pass
    return arch


def effective_gain(model: Any, weight: torch.Tensor) -> torch.Tensor:
    """``γ = c + w`` for a residual norm weight ``w`` under the model's convention (float64)."""
    arch = architecture(model)
    w = weight.detach().double().cpu()
    if math.isnan(arch.norm_offset):
        raise TlgeomError(
            f"model={arch.family}: its norm layers scale by neither w nor 1+w ({'; '.join(arch.notes)}); "
            "the effective gain γ is unknown, so LN(E) and sphere radii cannot be read"
        )
    return w + arch.norm_offset


def require(model: Any, analysis: str, *, attention: bool = False, scores: bool = False) -> Architecture:
    """The architecture, or a TlgeomError saying why ``analysis`` cannot run on it.

    Args:
        attention: the analysis needs per-head ``W_Q``, ``W_K`` (refuses MLA).
        scores: the analysis reproduces attention scores from ``q·k / s`` (also refuses ALiBi and
            soft-capping, whose extra terms are not in ``q·k``).
    """
    arch = architecture(model)
    if (attention or scores) and arch.attention == "MLA":
        raise TlgeomError(
            f"{analysis}: model={arch.family} uses multi-head latent attention (MLA: low-rank shared K/V "
            "latents with a decoupled rotary part), which has no per-head W_Q W_Kᵀ / W_V W_O to analyse"
        )
    if scores and arch.positional == "alibi":
        raise TlgeomError(
            f"{analysis}: model={arch.family} adds an ALiBi position bias to its attention scores, so "
            "softmax(q·k/s) is not its attention; the comparison would ignore the bias"
        )
    if scores and arch.sinks:
        raise TlgeomError(
            f"{analysis}: model={arch.family} has learned attention sinks (an extra softmax logit per head that "
            "takes probability mass from every key), so softmax(q·k/s) over the keys is not its attention"
        )
    if scores and arch.softcap is not None:
        raise TlgeomError(
            f"{analysis}: model={arch.family} soft-caps its attention logits (c·tanh(score/c), c={arch.softcap}), "
            "so softmax(q·k/s) is not its attention"
        )
    return arch
