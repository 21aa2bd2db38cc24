"""tlgeom.models.arch: conventions read from the model; refusals instead of garbage (tiny HF families)."""

from __future__ import annotations

import math

import pytest
import torch

from tests.architectures.families import boot
from tlgeom import TlgeomError
from tlgeom.models import _compat
from tlgeom.models.arch import architecture, probe_norm
from tlgeom.models.conventions import attention_input_norm, norm_layers


@pytest.fixture(scope="module")
def gemma():
    return boot("Gemma3ForCausalLM")


def test_gemma_one_plus_w_is_measured(gemma):
    a = architecture(gemma)
    assert (a.norm, a.norm_offset, a.norm_placement) == ("rmsnorm(1+w)", 1.0, "sandwich")
    ln1 = gemma.blocks[0].ln1.original_component
    kind, gamma, beta, res = probe_norm(gemma.blocks[0].ln1, 64)
    assert kind == "RMSNorm" and res < 1e-5 and float(beta.abs().max()) == 0.0
    torch.testing.assert_close(gamma, 1 + ln1.weight.detach().double(), rtol=0, atol=1e-5)
    layer = next(n for n in norm_layers(gemma) if n.name == "blocks.0.ln1")
    torch.testing.assert_close(layer.gamma, 1 + ln1.weight.detach().double())  # not w: LN(E) would be ~0


def test_attention_scale_is_the_models(gemma):
    hf_cfg = gemma.original_model.config
    assert architecture(gemma).attn_scale == pytest.approx(math.sqrt(hf_cfg.query_pre_attn_scalar))
    neo = architecture(boot("GPTNeoForCausalLM"))
    assert (neo.attn_scale, neo.attn_scale_source) == (1.0, "GPTNeoSelfAttention (unscaled scores)")


def test_bloom_is_a_causal_decoder_with_alibi():
    m = boot("BloomForCausalLM")
    assert not _compat.check_model(m).encoder  # an embedding LayerNorm does not make an encoder
    assert attention_input_norm(m, 0).name == "blocks.0.ln1"
    assert architecture(m).positional == "alibi"
    from tlgeom.experiments.heat import attention_vs_heat_kernel

    with pytest.raises(TlgeomError, match="ALiBi"):
        attention_vs_heat_kernel(m, "the cat sat on the mat and the dog ran", 0, k=3)


def test_hooks_that_never_fire_are_named_not_returned_as_memory():
    m = boot("OpenAIGPTLMHeadModel")
    from tlgeom.models.trajectory import record_trajectories

    with pytest.raises(TlgeomError, match=r"blocks\.0\.hook_resid_post.*did not fire"):
        record_trajectories(m, "the cat sat on the mat")


def test_a_failing_forward_is_a_tlgeom_error(tiny_gpt2, monkeypatch):
    from tlgeom.models.trajectory import record_trajectories

    def broken(*a, **k):
        raise AttributeError("'Attention' object has no attribute 'embed_positions'")

    monkeypatch.setattr(tiny_gpt2, "forward", broken)
    with pytest.raises(_compat.ModelForwardError, match="forward pass through TransformerLens fails"):
        record_trajectories(tiny_gpt2, "the cat")


def test_mla_is_refused_by_qk_readouts():
    m = boot("DeepseekV3ForCausalLM")
    assert architecture(m).attention == "MLA"
    from tlgeom.experiments.circuits import singular_directions

    with pytest.raises(TlgeomError, match="multi-head latent attention"):
        singular_directions(m, "QK", layers=0, k=2)
