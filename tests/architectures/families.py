"""Tiny random Hugging Face models for every family the installed TransformerBridge supports.

Each family's config class is built with its own defaults, then shrunk: 2 layers, d_model 64,
4 heads of width 16, a word-level vocabulary of ~140 tokens (tlgeom's tiny tokenizer), eager
attention. Norm weights are drawn away from their initial value so that a (1 + w) convention is
visible, and the model is seeded. Families whose config or bridge does not build offline are
reported by :func:`candidates` / :func:`build` with the reason, never silently dropped.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import torch

D_MODEL, N_LAYERS, N_HEADS, D_HEAD, N_CTX = 64, 2, 4, 16, 64

# config attribute -> tiny value (only attributes the family's default config has are set)
SIZES: dict[str, Any] = {
    "hidden_size": D_MODEL,
    "n_embd": D_MODEL,
    "d_model": D_MODEL,
    "dim": D_MODEL,
    "word_embed_proj_dim": D_MODEL,
    "embedding_size": D_MODEL,
    "num_hidden_layers": N_LAYERS,
    "n_layer": N_LAYERS,
    "n_layers": N_LAYERS,
    "num_layers": N_LAYERS,
    "num_attention_heads": N_HEADS,
    "n_head": N_HEADS,
    "n_heads": N_HEADS,
    "num_heads": N_HEADS,
    "num_key_value_heads": 2,
    "head_dim": D_HEAD,
    "kv_channels": D_HEAD,
    "intermediate_size": 128,
    "ffn_dim": 128,
    "n_inner": 128,
    "ffn_hidden_size": 128,
    "moe_intermediate_size": 32,
    "shared_expert_intermediate_size": 32,
    "num_experts": 4,
    "num_local_experts": 4,
    "n_routed_experts": 4,
    "num_experts_per_tok": 2,
    "n_group": 1,
    "topk_group": 1,
    "first_k_dense_replace": 1,
    "kv_lora_rank": 16,
    "q_lora_rank": 32,
    "qk_rope_head_dim": 8,
    "qk_nope_head_dim": 8,
    "v_head_dim": 16,
    "max_position_embeddings": N_CTX,
    "n_positions": N_CTX,
    "n_ctx": N_CTX,
    "max_seq_len": N_CTX,
    "seq_length": N_CTX,
    "rotary_dim": 8,
    "sliding_window": N_CTX,
    "layer_types": None,
    # state-space / hybrid layers: the smallest state, kernel and chunk (their torch fallback is slow)
    "state_size": 4,
    "mamba_d_state": 4,
    "ssm_state_size": 4,
    "conv_kernel": 2,
    "mamba_d_conv": 2,
    "expand": 1,
    "mamba_expand": 1,
    "chunk_size": 16,
    "mamba_chunk_size": 16,
    "time_step_rank": 8,
    "mamba_n_heads": 4,
    "mamba_d_head": 16,
    "mamba_n_groups": 1,
    "n_groups": 1,
    "use_cache": False,
    "tie_word_embeddings": False,
}

DEFAULT = object()  # in EXTRA: keep the family's own default for this key

# families whose config needs more than SIZES to be consistent at 2 layers
EXTRA: dict[str, dict[str, Any]] = {
    "GPTNeoForCausalLM": {"attention_types": [[["global", "local"], 1]], "window_size": N_CTX},
    "NemotronHForCausalLM": {"hybrid_override_pattern": "M*"},
    "Mamba2ForCausalLM": {"num_heads": 4, "head_dim": 16, "expand": 1},
    "FalconH1ForCausalLM": {"mamba_n_heads": DEFAULT, "mamba_d_head": DEFAULT},  # its own defaults fit d_model
}
MLA = {"head_dim": 8, "num_key_value_heads": N_HEADS}  # latent attention: rotary width qk_rope_head_dim, K/V per head

CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForMaskedLM")


@functools.lru_cache(maxsize=1)
def tokenizer():
    from tlgeom.models.load import tiny_tokenizer

    return tiny_tokenizer()


def candidates() -> list[str]:
    """Architectures in TransformerBridge's registry that are text LMs with a transformers class."""
    import transformers
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    out = []
    for name in sorted(SUPPORTED_ARCHITECTURES):
        if not name.endswith(CAUSAL_SUFFIXES) or name.startswith("TransformerLens"):
            continue
        if getattr(transformers, name, None) is None:
            continue
        out.append(name)
    return out


def tiny_hf(arch: str, seed: int = 0):
    """The tiny seeded HF model of ``arch`` (eager attention, float32, eval)."""
    import transformers

    cls = getattr(transformers, arch)
    cfg_cls = cls.config_class
    default = cfg_cls()
    keys = set(default.to_dict())
    tok = tokenizer()
    kwargs = {k: v for k, v in SIZES.items() if k in keys}
    kwargs.update(
        vocab_size=len(tok), pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id
    )
    for k, v in EXTRA.get(arch, {}).items():
        if v is DEFAULT:
            kwargs.pop(k, None)
        else:
            kwargs[k] = v
    if "kv_lora_rank" in keys:
        kwargs.update({k: v for k, v in MLA.items() if k in keys})
    if "attn_config" in keys and isinstance(default.attn_config, dict | object):  # MPT
        kwargs.pop("n_ctx", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cfg = cfg_cls(**kwargs)
        cfg._attn_implementation = "eager"
        cfg.architectures = [arch]
        torch.manual_seed(seed)
        hf = cls(cfg).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if p.dim() == 1 and "norm" in name.lower() or name.endswith(("ln_1.weight", "ln_2.weight")):
                p.add_(0.3 * torch.randn(p.shape, generator=gen))
    return hf


def boot(arch: str, seed: int = 0):
    """The TransformerBridge over :func:`tiny_hf` (the HF model is reachable as ``bridge.original_model``)."""
    from transformer_lens.model_bridge import TransformerBridge

    hf = tiny_hf(arch, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TransformerBridge.boot_transformers(f"local-{arch}", hf_model=hf, tokenizer=tokenizer()).eval()
