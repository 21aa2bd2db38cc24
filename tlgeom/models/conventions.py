"""What a model's normalisations are and where they read: the model's own norm and ε for
``space="normalized"`` (:func:`model_normalization`), every residual-stream LayerNorm/RMSNorm with its gain,
bias and the hooks of its input and output (:func:`norm_layers`, :class:`NormLayer`), the norm an attention
layer reads through (:func:`attention_input_norm`), and layer-index checks (:func:`check_layer`), for
TransformerLens 3.9 and 4.x models alike.
"""

from __future__ import annotations

import math
import re
import weakref
from dataclasses import dataclass
from typing import Any

import torch

from tlgeom._errors import TlgeomError, bad_arg
from tlgeom.geometry.sphere import NORM_RE
from tlgeom.models import _compat
from tlgeom.models.arch import architecture, effective_gain, normalized


def model_normalization(model: Any) -> tuple[str, float]:
    """``(norm, eps)`` of a TransformerLens model's own normalisation (from ``cfg``).

    ``cfg.normalization_type`` "RMS"/"RMSPre" → ``"rms"``; "LN"/"LNPre" → ``"layernorm"``.

    Raises:
        TlgeomError: the model has no normalisation (use ``space="raw"``).
    """
    kind = str(getattr(model.cfg, "normalization_type", None) or "")
    eps = float(getattr(model.cfg, "eps", 1e-5) or 0.0)
    if kind.upper().startswith("RMS"):
        return "rms", eps
    if kind.upper().startswith("LN"):
        return "layernorm", eps
    raise bad_arg("space", "normalized", f"'raw' for a model with normalization_type={kind or None!r}")


# ----------------------------------------------------------------------------- model adapters


@dataclass(frozen=True)
class NormLayer:
    """One normalisation layer of the residual stream.

    Attributes:
        name: hook prefix (``blocks.3.ln1``; ``embed_ln`` / ``embed.ln``; ``ln_final``).
        kind: ``"LayerNorm"`` or ``"RMSNorm"``.
        block: block index; −1 for the embedding LayerNorm, n_layers for ``ln_final``.
        gamma, beta: the module's gain and bias (float64; β zeros for RMSNorm; γ ones when folded).
        eps: the module's ε.
        input_hooks: hooks whose sum is the module's raw input (the residual it normalises).
        output_hook: the hook of the module's output after γ, β (Bridge only; None otherwise).
    """

    name: str
    kind: str
    block: int
    gamma: torch.Tensor
    beta: torch.Tensor
    eps: float
    input_hooks: tuple[str, ...]
    output_hook: str | None


def _norm_kind(module: Any, cfg: Any) -> str:
    cls = type(module).__name__
    if "RMS" in cls:
        return "RMSNorm"
    if "LayerNorm" in cls or "Normalization" in cls:
        return "LayerNorm"
    nt = str(getattr(cfg, "normalization_type", "LN") or "LN")
    return "RMSNorm" if nt.startswith("RMS") else "LayerNorm"


def _input_hooks(name: str, info: _compat.ModelInfo, model: Any) -> tuple[str, ...]:
    hd = model.hook_dict
    if f"{name}.hook_in" in hd:  # Bridge: every component has hook_in
        return (f"{name}.hook_in",)
    L = info.n_layers
    m = re.match(r"^blocks\.(\d+)\.ln([12])", name)
    if name == "embed.ln":  # HookedEncoder: word + position + token-type embeddings
        return tuple(h for h in ("embed.hook_embed", "embed.hook_pos_embed", "embed.hook_token_type_embed") if h in hd)
    if name == "ln_final":
        return (f"blocks.{L - 1}.hook_resid_post",)
    if m:
        l, which = int(m.group(1)), m.group(2)
        if info.encoder:  # HookedEncoder naming (see _compat): resid_mid = pre-LN1, resid_post = pre-LN2
            return (f"blocks.{l}.hook_resid_mid",) if which == "1" else (f"blocks.{l}.hook_resid_post",)
        if which == "1" or getattr(model.cfg, "parallel_attn_mlp", False):
            return (f"blocks.{l}.hook_resid_pre",)
        return (f"blocks.{l}.hook_resid_mid",)
    return ()


def norm_layers(model: Any) -> list[NormLayer]:
    """Every normalisation layer on the residual stream, in forward order.

    Raises:
        TlgeomError: not a TransformerLens model, or it has no ``*.hook_normalized`` hooks
            (a model without LayerNorm/RMSNorm).
    """
    info = _compat.check_model(model)
    found = []
    arch = architecture(model)
    for key in model.hook_dict:
        if not key.endswith(".hook_normalized"):
            continue
        name = key[: -len(".hook_normalized")]
        if not NORM_RE.match(name):
            continue
        if name == "ln_final" and info.encoder:
            continue  # Bridge BERT: the masked-LM head's LayerNorm, not the encoder's
        found.append(name)
    if not found and arch.norm != "none":
        raise TlgeomError(
            f"model={arch.family}: its {arch.norm} layers expose no 'blocks.L.ln1.hook_normalized' hook points "
            "on this TransformerLens bridge, so the residual-stream normalisation cannot be read"
        )
    if not found:
        raise TlgeomError(
            f"model={type(model).__name__}: expected a model with normalisation layers (hook points "
            f"'blocks.L.ln1.hook_normalized' etc., LayerNorm or RMSNorm); this one has none "
            f"(cfg.normalization_type={getattr(model.cfg, 'normalization_type', None)!r})"
        )

    def order(name: str) -> tuple[int, int]:
        if name.startswith("embed"):
            return (-1, 0)
        if name == "ln_final":
            return (info.n_layers, 0)
        m = re.match(r"^blocks\.(\d+)\.ln([12])(_post)?", name)
        assert m is not None, name  # found holds only embed*, ln_final and blocks.<i>.ln<1|2>[_post] names
        return (int(m.group(1)), int(m.group(2)) * 2 + (1 if m.group(3) else 0))

    out = []
    d = info.d_model
    for name in sorted(found, key=order):
        mod = model.get_submodule(name)
        kind = _norm_kind(mod, model.cfg)
        g = getattr(mod, "w", None)
        b = getattr(mod, "b", None) if kind == "LayerNorm" else None
        gamma = torch.ones(d, dtype=torch.float64) if not isinstance(g, torch.Tensor) else effective_gain(model, g)
        beta = torch.zeros(d, dtype=torch.float64) if not isinstance(b, torch.Tensor) else b.detach().double().cpu()
        mod_eps = getattr(mod, "eps", None)
        eps = getattr(model.cfg, "eps", 1e-5) if mod_eps is None else mod_eps
        out_hook = f"{name}.hook_out" if f"{name}.hook_out" in model.hook_dict else None
        out.append(
            NormLayer(
                name=name,
                kind=kind,
                block=order(name)[0],
                gamma=gamma,
                beta=beta,
                eps=float(eps),
                input_hooks=_input_hooks(name, info, model),
                output_hook=out_hook,
            )
        )
    return out


def attention_input_norm(model: Any, layer: int) -> NormLayer:
    """The normalisation layer whose output is read by block ``layer``'s attention.

    Pre-LN decoders: ``blocks.{layer}.ln1``. Post-LN BERT: the embedding LayerNorm for layer 0,
    ``blocks.{layer−1}.ln2`` (the previous block's output LayerNorm) after that. Post-norm decoders
    without an input norm (OLMo 2/3, EXAONE 4, :func:`tlgeom.models.arch.architecture` placement
    ``"post"``): their attention reads the raw stream, so readouts go through the block's own
    attention-output norm ``blocks.{layer}.ln1_post`` (its γ and ε) instead.
    """
    info = _compat.check_model(model)
    check_layer(layer, info.n_layers)
    layers = {n.name: n for n in norm_layers(model)}
    if info.encoder:
        want = ("embed_ln", "embed.ln") if layer == 0 else (f"blocks.{layer - 1}.ln2",)
    else:
        want = (f"blocks.{layer}.ln1",)
    if not info.encoder and architecture(model).norm_placement == "post":
        # post-norm decoders (OLMo 2/3, EXAONE 4) normalise each sublayer's *output* and feed attention the raw
        # stream: the documented fallback reads through the block's own attention-output norm
        want = (*want, f"blocks.{layer}.ln1_post")
    for w in want:
        if w in layers:
            _check_reads_through(model, layer, layers[w], info)
            return layers[w]
    raise TlgeomError(
        f"layer={layer}: no normalisation layer {want[0]!r} feeds this block's attention (found {sorted(layers)[:6]}…)"
    )


_READS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _check_reads_through(model: Any, layer: int, norm: NormLayer, info: _compat.ModelInfo) -> None:
    """TlgeomError unless block ``layer``'s attention input is ``γ ⊙ n(x) + β`` of ``norm`` (checked once per
    model and layer on 8 token ids, where the model has hooks on both sides; e.g. GPT-1 is post-LN and a
    ModernBERT decoder's first block reads an identity, so ``blocks.0.ln1`` is not what they attend from)."""
    seen = _READS.setdefault(model, {}) if _weakrefable(model) else {}
    if layer in seen:
        return
    hd = model.hook_dict
    target = next((h for h in (f"blocks.{layer}.attn.hook_in", f"blocks.{layer}.ln1.hook_out") if h in hd), None)
    if target is None or not norm.input_hooks or info.api != "bridge":
        seen[layer] = math.nan
        return
    n_tok = min(8, int(getattr(model.cfg, "d_vocab", 8) or 8))
    toks = torch.arange(n_tok, dtype=torch.long)[None]
    acts = _compat.capture(model, toks, torch.ones_like(toks, dtype=torch.bool), info, [target, *norm.input_hooks])
    x = torch.stack([acts[h][0].double().cpu() for h in norm.input_hooks]).sum(0)
    y = normalized(x, norm.kind, norm.eps) * norm.gamma + norm.beta
    got = acts[target][0].double().cpu()
    if y.shape != got.shape:
        err = math.inf
    else:
        err = float((y - got).norm(dim=-1).max() / got.norm(dim=-1).max().clamp_min(1e-30))
    tol = 1e-3 if _compat.forward_dtype(model).itemsize >= 4 else 3e-2
    seen[layer] = err
    if not err <= tol:
        raise TlgeomError(
            f"layer={layer}: the attention of block {layer} does not read γ⊙n(x)+β of {norm.name!r} (relative error "
            f"{err:.3g} > {tol:g}; placement {architecture(model).norm_placement!r}): token readouts through "
            f"LN_{layer}(E) would describe an input this attention never sees"
        )


def _weakrefable(obj: Any) -> bool:
    try:
        weakref.ref(obj)
        return True
    except TypeError:
        return False


def check_layer(layer: Any, n_layers: int, arg: str = "layer") -> int:
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise bad_arg(arg, layer, f"an int in [0, {n_layers - 1}] (the model has n_layers={n_layers})")
    return layer
