"""Talking to any TransformerLens model through canonical hook names.

Three APIs are accepted: ``TransformerBridge`` (TransformerLens 3.9 and 4.x),
``HookedTransformer`` and ``HookedEncoder`` (3.9 only). Nothing here imports a model class;
the API is read off the object (its class name and its hook points).

Residual-stream points (``points="resid"``), the same quantity in every API:

==========================  =========================  ================================
point                       decoder (both APIs)        encoder (post-LN BERT)
==========================  =========================  ================================
0: input of block 0         ``blocks.0.hook_resid_pre``  Bridge ``blocks.0.hook_resid_pre``;
                                                          HookedEncoder ``hook_full_embed``
l: output of block l-1      ``blocks.{l-1}.hook_resid_post``  Bridge ``blocks.{l-1}.hook_resid_post``;
                                                          HookedEncoder ``blocks.{l-1}.hook_normalized_resid_post``
==========================  =========================  ================================

``points="sublayer"`` adds, between block l's input and output, the stream between its
attention and MLP sublayers: ``hook_resid_mid`` on decoders; on a Bridge BERT, whose
``hook_resid_mid`` is the *pre-LN2 sum* (LN1 output + MLP output), the LN1 output
``blocks.{l}.ln1.hook_out`` is used instead. HookedEncoder has no hook on its LN1 output.
"""

from __future__ import annotations

import functools
import warnings
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Int

from tlgeom._errors import PrecisionWarning, TlgeomError, bad_arg

POINT_KINDS = ("resid", "sublayer")
#: Hugging Face model types whose attention is bidirectional (encoders), for TransformerLens versions
#: whose Bridge config does not say so.
ENCODER_MODEL_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert", "camembert", "mpnet", "modernbert",
     "deberta", "deberta-v2", "nomic_bert"}
)  # fmt: skip


@dataclass(frozen=True)
class ModelInfo:
    """What tlgeom needs to know about a model."""

    api: str  # "bridge" | "hooked_transformer" | "hooked_encoder"
    encoder: bool  # bidirectional, post-LN BERT style
    n_layers: int
    d_model: int
    n_ctx: int


def check_model(model: Any, arg: str = "model") -> ModelInfo:
    """Validate that ``model`` is a TransformerLens hooked model and describe it.

    Raises:
        TlgeomError: the object has no hook points / cfg (not a HookedRootModule or Bridge).
    """
    hook_dict = getattr(model, "hook_dict", None)
    cfg = getattr(model, "cfg", None)
    if not isinstance(model, torch.nn.Module) or not isinstance(hook_dict, dict) or cfg is None:
        raise bad_arg(
            arg,
            model,
            "a TransformerLens model (TransformerBridge, HookedTransformer or HookedEncoder; "
            f"a HookedRootModule with hook_dict and cfg), got {type(model).__name__}",
        )
    cls = type(model).__name__
    if cls == "HookedEncoder" or "hook_full_embed" in hook_dict:
        api, encoder = "hooked_encoder", True
    elif "TransformerBridge" in [c.__name__ for c in type(model).__mro__]:
        # an embedding LayerNorm alone does not make an encoder (BLOOM is a causal decoder with one)
        # TransformerLens 4.3 says so in cfg.attention_dir; 3.9's Bridge leaves "causal" on BERT, so the HF
        # model type decides there
        hf_type = str(getattr(getattr(getattr(model, "original_model", None), "config", None), "model_type", "") or "")
        bidirectional = (
            str(getattr(cfg, "attention_dir", "") or "") == "bidirectional" or hf_type in ENCODER_MODEL_TYPES
        )
        api, encoder = "bridge", "embed_ln.hook_out" in hook_dict and bidirectional
    else:
        api, encoder = "hooked_transformer", False
    return ModelInfo(
        api=api, encoder=encoder, n_layers=int(cfg.n_layers), d_model=int(cfg.d_model), n_ctx=int(cfg.n_ctx)
    )


def point_hook_names(model: Any, points: str = "resid", info: ModelInfo | None = None) -> list[str]:
    """The hook names whose activations form each trajectory point, in forward order."""
    info = info or check_model(model)
    if points not in POINT_KINDS:
        raise bad_arg("points", points, f"one of {POINT_KINDS}")
    L = info.n_layers
    if info.api == "hooked_encoder":
        if points == "sublayer":
            raise bad_arg(
                "points",
                points,
                "'resid' on a HookedEncoder (its LN1 output has no hook; "
                "a TransformerBridge exposes it as ln1.hook_out)",
            )
        names = ["hook_full_embed"] + [f"blocks.{l}.hook_normalized_resid_post" for l in range(L)]
    elif points == "resid":
        names = ["blocks.0.hook_resid_pre"] + [f"blocks.{l}.hook_resid_post" for l in range(L)]
    else:
        mid = "blocks.{l}.ln1.hook_out" if info.encoder else "blocks.{l}.hook_resid_mid"
        names = ["blocks.0.hook_resid_pre"]
        for l in range(L):
            names += [mid.format(l=l), f"blocks.{l}.hook_resid_post"]
        if names[1] not in model.hook_dict and "blocks.0.hook_resid_post" in model.hook_dict:
            raise bad_arg(
                "points",
                points,
                f"'resid' on this {type(model).__name__}: its blocks have no stream between attention and MLP "
                "(parallel attention and MLP, or a state-space block), so there is no mid-block point",
            )
    check_hook_names(model, names)
    return names


def point_labels(n_layers: int, points: str) -> list[str]:
    """Readable labels: ``embed``, ``L0``, … (``resid``) or ``embed``, ``L0.mid``, ``L0``, … (``sublayer``)."""
    if points == "resid":
        return ["embed"] + [f"L{l}" for l in range(n_layers)]
    out = ["embed"]
    for l in range(n_layers):
        out += [f"L{l}.mid", f"L{l}"]
    return out


def check_hook_names(model: Any, names: Sequence[str], arg: str = "hook point") -> None:
    """Raise TlgeomError naming the first hook point the model lacks."""
    hook_dict = model.hook_dict
    for name in names:
        if name not in hook_dict:
            similar = [k for k in hook_dict if k.split(".")[-1] == name.split(".")[-1]][:4]
            raise bad_arg(
                arg,
                name,
                f"a hook point of this {type(model).__name__} "
                f"(e.g. {similar or list(hook_dict)[:4]}; {len(hook_dict)} in model.hook_dict)",
            )


def count_hooks(model: torch.nn.Module) -> int:
    """Number of forward/backward hooks attached to any submodule (for leak checks)."""
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_backward_pre_hooks", {}))
    return n


def _tokenize_one(model: Any, text: str, arg: str, n_ctx: int) -> torch.Tensor:
    if not isinstance(text, str):
        raise bad_arg(arg, text, "a string")
    if not text.strip():
        raise bad_arg(arg, text, "a non-empty string (whitespace alone has no tokens to follow)")
    try:
        toks = model.to_tokens(text, truncate=False)
    except TypeError:  # an API without the truncate flag
        toks = model.to_tokens(text)
    if isinstance(toks, tuple):  # HookedEncoder returns (tokens, token_type_ids, attention_mask)
        toks = toks[0]
    toks = toks[0].long().cpu()
    if toks.numel() > n_ctx:
        raise bad_arg(
            arg, f"{text[:40]}…" if len(text) > 40 else text, f"at most n_ctx={n_ctx} tokens, got {toks.numel()}"
        )
    return toks


def tokenize(
    model: Any, inputs: Any, info: ModelInfo | None = None, arg: str = "inputs"
) -> tuple[Int[torch.Tensor, "batch pos"], Bool[torch.Tensor, "batch pos"]]:
    """Tokens and padding mask for a string, a list of strings, or a token tensor.

    Strings go through ``model.to_tokens`` (so a Bridge prepends BOS on SmolLM2 and adds
    [CLS]/[SEP] on BERT, as TransformerLens users expect). A list is tokenized text by text and
    right-padded; ``mask`` is False on padding. A token tensor ([pos] or [batch, pos]) is used
    as given, every position valid.
    """
    info = info or check_model(model)
    if isinstance(inputs, str):
        toks = _tokenize_one(model, inputs, arg, info.n_ctx)[None]
        return toks, torch.ones_like(toks, dtype=torch.bool)
    if isinstance(inputs, (list, tuple)):
        if len(inputs) == 0 or not all(isinstance(t, str) for t in inputs):
            raise bad_arg(arg, inputs, "a string, a non-empty list of strings, or a LongTensor [batch, pos]")
        rows = [_tokenize_one(model, t, f"{arg}[{i}]", info.n_ctx) for i, t in enumerate(inputs)]
        pos = max(r.numel() for r in rows)
        pad_id = getattr(getattr(model, "tokenizer", None), "pad_token_id", None) or 0
        toks = torch.full((len(rows), pos), int(pad_id), dtype=torch.long)
        mask = torch.zeros((len(rows), pos), dtype=torch.bool)
        for i, r in enumerate(rows):
            toks[i, : r.numel()] = r
            mask[i, : r.numel()] = True
        return toks, mask
    if isinstance(inputs, torch.Tensor):
        if inputs.dtype.is_floating_point or inputs.dtype == torch.bool or inputs.dim() not in (1, 2):
            raise bad_arg(
                arg,
                f"Tensor(shape={tuple(inputs.shape)}, dtype={inputs.dtype})",
                "integer token ids of shape [pos] or [batch, pos]",
            )
        toks = (inputs[None] if inputs.dim() == 1 else inputs).long().cpu()
        if toks.shape[-1] == 0 or toks.shape[0] == 0:
            raise bad_arg(arg, f"Tensor(shape={tuple(inputs.shape)})", "at least one token")
        if toks.shape[-1] > info.n_ctx:
            raise bad_arg(
                arg,
                f"Tensor(shape={tuple(inputs.shape)})",
                f"at most n_ctx={info.n_ctx} positions, got {toks.shape[-1]}",
            )
        d_vocab = int(getattr(model.cfg, "d_vocab", 0) or 0)
        if d_vocab and (toks.min() < 0 or toks.max() >= d_vocab):
            raise bad_arg(arg, f"token ids in [{int(toks.min())}, {int(toks.max())}]", f"ids in [0, d_vocab={d_vocab})")
        return toks, torch.ones_like(toks, dtype=torch.bool)
    raise bad_arg(arg, inputs, "a string, a non-empty list of strings, or a LongTensor [batch, pos]")


def str_tokens(model: Any, tokens: torch.Tensor, mask: torch.Tensor) -> list[list[str]]:
    """Each valid token decoded on its own (TransformerLens' ``to_str_tokens`` convention), readable
    where a token is part of a character (:func:`token_string`)."""
    tok = model.tokenizer
    return [[token_string(tok, int(t)) for t, m in zip(row, mrow) if m] for row, mrow in zip(tokens, mask)]


@functools.lru_cache(maxsize=1)
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte-level BPE alphabet (each byte shown as a printable character) back to bytes."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_string(tokenizer: Any, token_id: int) -> str:
    """One token as text. A byte-level token that holds only part of a character (an emoji or a CJK
    character spans several tokens) decodes to U+FFFD on its own; it is shown by its bytes instead,
    ``<0xF0><0x9F>``, ASCII bytes as themselves (SentencePiece byte-fallback pieces are already
    written that way)."""
    text = tokenizer.decode([token_id])
    if "\ufffd" not in text:
        return text
    piece = tokenizer.convert_ids_to_tokens(token_id) if hasattr(tokenizer, "convert_ids_to_tokens") else None
    if not isinstance(piece, str) or not piece:
        return text
    dec = _byte_decoder()
    if not all(ch in dec for ch in piece):
        return piece  # e.g. SentencePiece's "<0xF0>"
    raw = bytes(dec[ch] for ch in piece)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return "".join(chr(b) if b < 0x80 else f"<0x{b:02X}>" for b in raw)


def model_device(model: Any) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def check_model_device(model: Any, device: str | torch.device | None, arg: str = "device") -> torch.device:
    """``device`` as the public API means it wherever a model runs: None (the model's own device) or a
    device equal to the model's; any other is a TlgeomError naming it (move the model with
    ``model.to(device)`` first: tlgeom never moves a user's model)."""
    have = model_device(model)
    if device is None:
        return have
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise bad_arg(arg, device, "a torch device such as 'cpu' or 'cuda:0'") from None
    if dev.type != have.type or (dev.index is not None and dev.index != have.index):
        raise bad_arg(arg, device, f"the model's device ({have}); move the model with model.to(device)")
    return have


def takes_device(fn: Any) -> Any:
    """Decorate a public ``fn(model, ...)`` so that it takes the shared keyword ``device`` (checked by
    :func:`check_model_device` before anything runs) and shows it in its signature."""
    import inspect

    sig = inspect.signature(fn)
    if "device" in sig.parameters:
        return fn

    @functools.wraps(fn)
    def wrapper(model: Any, *args: Any, device: str | torch.device | None = None, **kwargs: Any) -> Any:
        if device is not None and hasattr(model, "parameters"):  # a non-model gets the function's own error
            check_model_device(model, device)
        return fn(model, *args, **kwargs)

    params = list(sig.parameters.values())
    new = inspect.Parameter("device", inspect.Parameter.KEYWORD_ONLY, default=None)
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
    wrapper.__signature__ = sig.replace(parameters=[*params[:at], new, *params[at:]])  # type: ignore[attr-defined]
    if wrapper.__doc__ and "device:" not in wrapper.__doc__:
        wrapper.__doc__ += (
            "\n\n    ``device``: None (the model's device) or that same device; tlgeom never moves a model.\n"
        )
    return wrapper


def forward_dtype(model: Any) -> torch.dtype:
    """The dtype the model's forward pass runs in (``cfg.dtype``, else its first float parameter's)."""
    dt = getattr(getattr(model, "cfg", None), "dtype", None)
    if isinstance(dt, torch.dtype) and dt.is_floating_point:
        return dt
    for p in model.parameters():
        if p.dtype.is_floating_point:
            return p.dtype
    return torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    """``"float32"`` for ``torch.float32`` (JSON-ready)."""
    return str(dtype).removeprefix("torch.")


_WARNED_PRECISION: weakref.WeakSet = weakref.WeakSet()


def check_precision(model: Any) -> torch.dtype:
    """The forward dtype; warns once per model (:class:`tlgeom.PrecisionWarning`) below float32.

    Geometry is float64, but the states it reads come from the forward pass: on a bf16 model turning
    angles can differ from the float32 model's by tens of degrees.
    """
    dt = forward_dtype(model)
    if dt.itemsize < 4 and model not in _WARNED_PRECISION:
        _WARNED_PRECISION.add(model)
        warnings.warn(
            f"the model runs its forward pass in {dt}: residual states carry about "
            f"{torch.finfo(dt).eps:.0e} relative error and turning angles can be off by tens of degrees "
            "from the float32 model's; load it with dtype='float32' for numbers to cite",
            PrecisionWarning,
            stacklevel=3,
        )
    return dt


def forward_kwargs(model: Any, mask: torch.Tensor, info: ModelInfo) -> dict:
    """Keyword arguments that make a forward pass ignore padding (nothing when unpadded)."""
    if bool(mask.all()):
        return {}
    m = mask.to(model_device(model)).long()
    if info.api == "hooked_encoder":
        return {"one_zero_attention_mask": m}
    return {"attention_mask": m}


def storing_hooks(out: dict, names: Sequence[str], take=lambda act: act.detach()) -> list:
    """``(name, hook)`` pairs that store ``take(activation)`` in ``out[name]`` (keyed by the name
    asked for: a Bridge fires one HookPoint under several alias names)."""

    def make(name: str):
        def hook(act, hook=None):
            out[name] = take(act)
            return act

        return hook

    return [(n, make(n)) for n in dict.fromkeys(names)]


def capture(
    model: Any,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    info: ModelInfo,
    names: Sequence[str],
    required: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """The activations at ``names`` from one forward pass (detached, not copied).

    ``required`` (default: all of ``names``) must fire, else a TlgeomError names those that did not.
    """
    out: dict[str, torch.Tensor] = {}
    run_with_point_hooks(model, tokens, mask, info, storing_hooks(out, names), required=required)
    return out


def run_with_point_hooks(
    model: Any,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    info: ModelInfo,
    fwd_hooks: list,
    required: Sequence[str] | None = None,
) -> None:
    """One forward pass with ``fwd_hooks`` attached; every hook is removed on every path.

    Every hook in ``required`` (default: all of ``fwd_hooks``) must fire, else a TlgeomError names
    those that did not.
    """
    check_precision(model)
    kwargs = forward_kwargs(model, mask, info)
    if info.api != "hooked_encoder":
        kwargs["return_type"] = None  # skip the unembedding: only the residual stream is read
    fired: set[str] = set()
    in_hook: list[BaseException] = []

    def tracked(name: str, fn):
        def hook(act, hook=None):
            fired.add(name)
            try:
                return fn(act, hook=hook)
            except BaseException as exc:  # tlgeom's own hooks: their errors propagate unchanged
                in_hook.append(exc)
                raise

        return hook

    # model.hooks() removes exactly the hooks it added when the block exits, exceptions included.
    with torch.no_grad(), model.hooks(fwd_hooks=[(n, tracked(n, f)) for n, f in fwd_hooks]):
        try:
            model(tokens.to(model_device(model)), **kwargs)
        except TlgeomError:
            raise
        except (AttributeError, RuntimeError, NotImplementedError, TypeError, IndexError, KeyError, ValueError) as exc:
            if any(e is exc for e in in_hook):
                raise
            raise ModelForwardError(
                f"model={type(getattr(model, 'original_model', model)).__name__}: its forward pass through "
                f"TransformerLens fails on this input ({type(exc).__name__}: {str(exc)[:200]}); nothing can be "
                "measured on it"
            ) from exc
    check_fired(model, [n for n, _ in fwd_hooks] if required is None else required, fired)


class ModelForwardError(TlgeomError, RuntimeError):
    """The model's own forward pass failed (a bridge that cannot run this architecture): a TlgeomError
    saying so, and still a RuntimeError for code that caught the raw error before."""


def check_fired(model: Any, names: Sequence[str], fired: set[str]) -> None:
    """TlgeomError naming every hook point in ``names`` that did not fire (a tensor filled from hooks
    would otherwise hold uninitialised memory where they should have written)."""
    missing = [n for n in dict.fromkeys(names) if n not in fired]
    if missing:
        raise TlgeomError(
            f"hook points {missing} exist on this {type(model).__name__} but did not fire during the forward pass "
            f"({len(missing)} of {len(set(names))}): the bridge does not route these activations through them, "
            "so tlgeom refuses to return states it never received"
        )
