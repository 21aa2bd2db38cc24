"""The LayerNorm hypersphere: closed forms, TransformerLens hooks, γ/β, processing, bad input."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tlgeom
from tlgeom.experiments.sphere import sphere_report
from tlgeom.geometry.sphere import apply_norm, ellipsoid_geometry, embedding_check, expected_radius, normalize
from tlgeom.models import _compat, tiny_model
from tlgeom.models.conventions import norm_layers

F32 = dict(rtol=1e-5, atol=1e-6)  # float32 activations vs float64 recomputation


@settings(max_examples=30, deadline=None)
@given(d=st.integers(2, 64), eps=st.sampled_from([0.0, 1e-5, 1e-2]), shift=st.floats(-5, 5), seed=st.integers(0, 10**6))
def test_normalize_closed_forms(d, eps, shift, seed):
    x = torch.randn(7, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)) + shift
    ln = normalize(x, "LayerNorm", eps)
    torch.testing.assert_close(ln, torch.nn.functional.layer_norm(x, (d,), eps=eps), rtol=1e-10, atol=1e-10)
    s = (x.var(-1, unbiased=False) + eps).sqrt()
    torch.testing.assert_close(ln.norm(dim=-1), expected_radius(s, d, eps), rtol=1e-10, atol=1e-12)
    assert ln.sum(-1).abs().max() < 1e-9 * math.sqrt(d)  # hyperplane ⊥ 1
    rms = normalize(x, "RMSNorm", eps)
    s = (x.pow(2).mean(-1) + eps).sqrt()
    torch.testing.assert_close(rms, x / s[:, None], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rms.norm(dim=-1), expected_radius(s, d, eps), rtol=1e-10, atol=1e-12)
    g, b = torch.rand(d, dtype=torch.float64) + 0.5, torch.randn(d, dtype=torch.float64)
    torch.testing.assert_close(
        apply_norm(x, "LayerNorm", g, b, eps),
        torch.nn.functional.layer_norm(x, (d,), g, b, eps),
        rtol=1e-10,
        atol=1e-10,
    )


def test_ellipsoid_and_embedding_closed_forms():
    d = 16
    g = torch.linspace(0.5, 2.0, d, dtype=torch.float64)
    b = torch.full((d,), 0.25, dtype=torch.float64)
    e = ellipsoid_geometry(g, b)
    assert e["axis_ratio"] == pytest.approx(4.0)
    assert e["beta_norm"] == pytest.approx(0.25 * math.sqrt(d))
    assert e["offset_ratio"] == pytest.approx(0.25 * math.sqrt(d) / (math.sqrt(d) * g.pow(2).mean().sqrt().item()))
    ident = ellipsoid_geometry(torch.ones(d), None)
    assert ident["axis_ratio"] == 1.0 and ident["beta_norm"] == 0.0 and ident["gamma_cv"] == 0.0
    E = torch.randn(200, d, dtype=torch.float64)
    # RMSNorm only rescales each row: cosine distance 0 for original and scaled
    rms = embedding_check(E, "RMSNorm")
    assert rms["original"]["cos_dist_mean"] < 1e-12 and rms["scaled"]["cos_dist_mean"] < 1e-12
    # an independent computation with torch's layer_norm
    ln = embedding_check(E, "LayerNorm", 1e-5)  # F.layer_norm's default ε
    R = torch.nn.functional.layer_norm(E, (d,), eps=1e-5)
    assert ln["original"]["l2_mean"] == pytest.approx(float((E - R).norm(dim=-1).mean()), rel=1e-10)
    c = (E - E.mean(0)) * math.sqrt(d) / E.norm(dim=-1).mean()
    assert ln["centred & scaled"]["l2_mean"] == pytest.approx(float((c - R).norm(dim=-1).mean()), rel=1e-10)
    # rows already on the LayerNorm sphere: original and scaled coincide with LN(E)
    on = torch.nn.functional.layer_norm(E, (d,), eps=0.0)
    chk = embedding_check(on, "LayerNorm")
    assert chk["original"]["l2_mean"] < 1e-9 and chk["scaled"]["l2_mean"] < 1e-9


def test_report_on_every_tiny_model(tiny_any):
    m = tiny_any
    info = _compat.check_model(m)
    texts = ["the cat sat on the mat .", "a big dog"]
    r = sphere_report(m, texts)
    f = r.to_frame()
    L = m.cfg.n_layers
    assert len(f) == 2 * L + 1  # decoders: ln1, ln2 per block + ln_final; encoders: embedding LN + ln1, ln2
    assert "mlm_head.ln" not in set(f.name)
    if info.encoder:
        assert f.name.iloc[0] in ("embed_ln", "embed.ln") and "ln_final" not in set(f.name)
    else:
        assert f.name.iloc[-1] == "ln_final"
    _, mask = _compat.tokenize(m, texts)
    assert r.n_tokens == int(mask.sum())  # padding excluded
    assert (f.radius_rel_err_max < 1e-3).all()
    assert (f.eps_rel_err_max < 1e-6).all()  # the exact ε correction leaves float32 rounding only
    assert (f.input_recon_err < 1e-5).all()  # raw input hooks are the module's input, in every API
    lnf = f[f.kind == "LayerNorm"]
    assert (lnf.ones_cos_max < 1e-6).all()
    assert (f.raw_norm_mean > 0).all() and f.raw_norm_mean.notna().all()
    if info.api == "bridge":
        assert (f.affine_rel_err < 1e-5).all()  # hook_out = γ ⊙ hook_normalized + β: hook_normalized is pre-gain
    rms = f[f.kind == "RMSNorm"]
    if len(rms):  # RMSNorm has no hyperplane: measured, not asserted to vanish
        assert "RMSNorm" in r.summary()
    assert "√d" in r.summary() and len(r.embedding_frame()) == 4
    assert r.dtype == "float32" and "ON the √d sphere to float32 rounding" in r.summary()
    r.tol = 1e-300  # a tolerance nothing meets: the verdict must flip, not be hard-wired
    assert "NOT on the √d sphere" in r.summary()


def test_gain_and_bias_make_a_displaced_ellipsoid():
    m = tiny_model("gpt2")
    d = m.cfg.d_model
    g = torch.linspace(0.5, 2.0, d)
    with torch.no_grad():
        for name in ("blocks.0.ln1", "ln_final"):
            mod = m.get_submodule(name)
            mod.w.copy_(g)
            mod.b.copy_(torch.full((d,), 0.1))
    f = sphere_report(m, "the sun and the moon").to_frame().set_index("name")
    assert f.loc["blocks.0.ln1", "axis_ratio"] == pytest.approx(4.0, rel=1e-6)
    assert f.loc["ln_final", "beta_norm"] == pytest.approx(0.1 * math.sqrt(d), rel=1e-6)
    assert f.loc["blocks.0.ln2", "axis_ratio"] == pytest.approx(1.0)
    assert (f.affine_rel_err < 1e-5).all()  # the report's γ⊙n+β equals what the model outputs
    assert (f.radius_rel_err_max < 1e-3).all()  # the normalised vectors are untouched by γ, β


def test_processing_folds_gains_and_centres_the_residual():
    raw = tiny_model("gpt2")
    with torch.no_grad():
        raw.blocks[0].ln1.w.mul_(torch.linspace(0.5, 2.0, raw.cfg.d_model))
    proc = tiny_model("gpt2")
    proc.load_state_dict(raw.state_dict())
    proc.enable_compatibility_mode()
    text = "the old man saw the sea"
    a, b = sphere_report(raw, text), sphere_report(proc, text)
    fa, fb = a.to_frame(), b.to_frame()
    assert fa.axis_ratio.max() > 3.9 and (fb.axis_ratio - 1).abs().max() < 1e-6  # γ folded into the weights
    assert fa.raw_ones_cos_mean.min() > 1e-3 and fb.raw_ones_cos_mean.max() < 1e-5  # residual made mean-free
    torch.testing.assert_close(a.norms, b.norms, rtol=1e-5, atol=1e-5)  # LayerNorm ignores the mean: same sphere
    assert "γ = 1, β = 0" in b.summary()


def test_no_normalisation_and_bad_input():
    try:
        from transformer_lens.config import TransformerBridgeConfig
    except ImportError:
        from transformer_lens.config.TransformerBridgeConfig import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    from tlgeom.models import tiny_tokenizer

    tok = tiny_tokenizer()
    bare = TransformerBridge.boot_native(
        TransformerBridgeConfig(
            n_layers=1,
            d_model=16,
            d_head=4,
            n_heads=4,
            d_mlp=32,
            n_ctx=16,
            d_vocab=len(tok),
            act_fn="relu",
            normalization_type=None,
        ),
        tokenizer=tok,
    )
    with pytest.raises(tlgeom.TlgeomError, match="normalisation"):
        sphere_report(bare, "the cat")
    with pytest.raises(tlgeom.TlgeomError, match="model"):
        sphere_report(torch.nn.Linear(2, 2), "the cat")
    m = tiny_model("gpt2")
    with pytest.raises(tlgeom.TlgeomError, match="inputs"):
        sphere_report(m, 3)
    with pytest.raises(tlgeom.TlgeomError, match="kind"):
        normalize(torch.ones(3), "BatchNorm")


def test_hooks_removed_on_error(tiny_gpt2):
    m = tiny_gpt2
    sphere_report(m, "the cat")  # the Bridge adds permanent hooks of its own on its first forward
    before = _compat.count_hooks(m)

    def boom(*a, **k):
        raise RuntimeError("boom")

    m.forward = boom  # raises inside the hooks context
    try:
        with pytest.raises(RuntimeError):
            sphere_report(m, "the cat")
    finally:
        del m.forward
    assert _compat.count_hooks(m) == before
    sphere_report(m, "the cat")
    assert _compat.count_hooks(m) == before


def test_plot(tiny_llama):
    import matplotlib

    matplotlib.use("Agg")
    axes = sphere_report(tiny_llama, "the cat").plot().axes  # plot() returns the Figure
    assert len(axes) == 3
    assert norm_layers(tiny_llama)[0].kind == "RMSNorm"
