"""QK/OV singular directions and the key-value noun probe: closed forms, activations, GQA, bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tlgeom
from tlgeom.experiments.circuits import (
    _kv_groups,
    attn_scale,
    cumulative_energy,
    factored_svd,
    load_nouns,
    noun_probe,
    ov_circuit,
    qk_circuit,
    rank_at_energy,
    sign_by_largest_coordinate,
    sign_by_reference,
    single_token_words,
    singular_directions,
)
from tlgeom.geometry.sphere import apply_norm
from tlgeom.models import _compat
from tlgeom.models.conventions import attention_input_norm


def test_energy_closed_forms():
    S = torch.tensor([3.0, 2.0, 1.0, 0.0])
    torch.testing.assert_close(cumulative_energy(S), torch.tensor([9, 13, 14, 14], dtype=torch.float64) / 14)
    assert rank_at_energy(S, 0.99).item() == 3 and rank_at_energy(S, 0.6).item() == 1
    assert rank_at_energy(S, 1.0).item() == 3  # the number of non-zero singular values
    assert rank_at_energy(torch.zeros(4)).item() == 0
    with pytest.raises(tlgeom.TlgeomError, match="energy"):
        rank_at_energy(S, 1.5)


@settings(max_examples=25, deadline=None)
@given(d=st.integers(4, 24), m=st.integers(1, 4), seed=st.integers(0, 10**6))
def test_factored_svd_property(d, m, seed):
    gen = torch.Generator().manual_seed(seed)
    A, B = (
        torch.randn(2, d, m, generator=gen, dtype=torch.float64),
        torch.randn(2, m, d, generator=gen, dtype=torch.float64),
    )
    U, S, V = factored_svd(A, B)
    dense = A @ B
    torch.testing.assert_close((U * S[..., None, :]) @ V.transpose(-1, -2), dense, rtol=1e-10, atol=1e-10)
    eye = torch.eye(m, dtype=torch.float64).expand(2, m, m)
    torch.testing.assert_close(U.transpose(-1, -2) @ U, eye, rtol=0, atol=1e-10)
    torch.testing.assert_close(S, torch.linalg.svdvals(dense)[..., :m], rtol=1e-9, atol=1e-9)  # independent
    r = rank_at_energy(S, 0.5)
    assert bool((r <= rank_at_energy(S, 0.9)).all())


def test_sign_rules_are_invariant_to_the_svd_sign():
    gen = torch.Generator().manual_seed(0)
    R = torch.randn(50, 8, generator=gen, dtype=torch.float64)
    V = torch.linalg.qr(torch.randn(8, 3, generator=gen, dtype=torch.float64)).Q
    for rule in (lambda v: sign_by_reference(R @ v), sign_by_largest_coordinate):
        a = V * rule(V)
        b = (-V) * rule(-V)
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    s = sign_by_reference(R @ V)
    fixed = R @ (V * s)
    assert bool((fixed.amax(0) >= -fixed.amin(0)).all())


@pytest.mark.parametrize("circuit", ["QK", "OV"])
def test_singular_directions_reconstruct_and_are_stable(tiny_any, circuit):
    m = tiny_any
    sd = singular_directions(m, circuit, k=3, n_nearest=4)
    fm = qk_circuit(m) if circuit == "QK" else ov_circuit(m)
    dense = fm.A @ fm.B  # the d×d matrices, formed only here, to check
    err = (sd.reconstruct() - dense).norm(dim=(-2, -1)) / dense.norm(dim=(-2, -1))
    assert float(err.max()) < 1e-4
    r = sd.U.shape[-1]
    eye = torch.eye(r, dtype=torch.float64)
    torch.testing.assert_close(
        sd.U.transpose(-1, -2) @ sd.U, eye.expand_as(sd.U.transpose(-1, -2) @ sd.U), rtol=0, atol=1e-10
    )
    torch.testing.assert_close(
        sd.V.transpose(-1, -2) @ sd.V, eye.expand_as(sd.V.transpose(-1, -2) @ sd.V), rtol=0, atol=1e-10
    )
    again = singular_directions(m, circuit, k=3, n_nearest=4)
    assert torch.equal(sd.U, again.U) and torch.equal(sd.V, again.V) and torch.equal(sd.left_ids, again.left_ids)
    assert sd.U.shape[:2] == (m.cfg.n_layers, m.cfg.n_heads)  # grouped-query models expanded to every query head
    # nearest tokens: an independent brute force over LN(E) / E for one direction
    l, h, i = m.cfg.n_layers - 1, 1, 0
    norm = attention_input_norm(m, l)
    lnE = apply_norm(m.W_E.detach(), norm.kind, norm.gamma, norm.beta, norm.eps)
    right_ref = lnE if circuit == "QK" else m.W_E.detach().double()
    assert int((lnE @ sd.U[l, h, :, i]).argmax()) == int(sd.left_ids[l, h, i, 0])
    assert int((right_ref @ sd.V[l, h, :, i]).argmax()) == int(sd.right_ids[l, h, i, 0])
    # real token strings of the model's tokenizer
    vocab = {m.tokenizer.decode([t]) for t in range(m.cfg.d_vocab)}
    assert {t for row in sd.left_tokens[l][h] for t in row} <= vocab
    frame = sd.to_frame()
    assert len(frame) == 2 * m.cfg.n_layers * m.cfg.n_heads * 3 * 4
    assert set(frame.side) == {"left", "right"} and frame.token.map(type).eq(str).all()
    assert len(sd.spectrum_frame()) == sd.S.numel()
    assert "s=" in sd.table(0, 0)


def _attention_input(m, cache, l):
    norm = attention_input_norm(m, l)
    x = cache[f"{norm.name}.hook_normalized"].double()
    return x * norm.gamma + norm.beta


def _bias(m, name, H):
    try:
        b = getattr(m, name).detach().double()
    except Exception:  # noqa: BLE001 - bias-free Llama raises
        return 0.0
    return b.repeat_interleave(H // b.shape[1], dim=1) if b.shape[1] != H else b


def test_circuits_match_the_model_activations(tiny_any):
    """q = x W_Q + b_Q, k = x W_K + b_K, v = x W_V + b_V and attn_out = Σ_h z_h W_O + b_O from the factors of
    model.QK / model.OV (grouped-query heads expanded), with x the output of the norm feeding attention."""
    m = tiny_any
    info = _compat.check_model(m)
    toks, _ = _compat.tokenize(m, "the cat sat on the mat .")
    H, scale = m.cfg.n_heads, attn_scale(m)
    kw = {} if info.api == "hooked_encoder" else {"return_type": None}
    _, cache = m.run_with_cache(toks, **kw)
    Aq, Bk = qk_circuit(m).A, qk_circuit(m).B
    Av, Bo = ov_circuit(m).A, ov_circuit(m).B
    rotary = getattr(m.cfg, "positional_embedding_type", "") == "rotary"
    P = 1 if rotary else toks.shape[1]  # rotary leaves position 0 unrotated
    bQ, bK, bV = _bias(m, "b_Q", H), _bias(m, "b_K", H), _bias(m, "b_V", H)
    for l in range(m.cfg.n_layers):
        x = _attention_input(m, cache, l)[:, :P]
        q = torch.einsum("bpd,hde->bphe", x, Aq[l] * scale) + (bQ[l] if torch.is_tensor(bQ) else 0)
        k = torch.einsum("bpd,hed->bphe", x, Bk[l]) + (bK[l] if torch.is_tensor(bK) else 0)
        v = torch.einsum("bpd,hde->bphe", x, Av[l]) + (bV[l] if torch.is_tensor(bV) else 0)
        hk, hv = cache[f"blocks.{l}.attn.hook_k"].double(), cache[f"blocks.{l}.attn.hook_v"].double()
        if hk.shape[2] != H:  # grouped-query: hooks hold the key/value heads only
            hk, hv = hk.repeat_interleave(H // hk.shape[2], 2), hv.repeat_interleave(H // hv.shape[2], 2)
        torch.testing.assert_close(q, cache[f"blocks.{l}.attn.hook_q"].double()[:, :P], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(k, hk[:, :P], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(v, hv[:, :P], rtol=1e-4, atol=1e-5)
        z = cache[f"blocks.{l}.attn.hook_z"].double()
        out = torch.einsum("bphe,hed->bpd", z, Bo[l]) + m.b_O[l].detach().double()
        if info.encoder and info.api == "bridge":  # Bridge BERT: hook_attn_out is the LN1 *output*; LN1's input is
            target = (
                cache[f"blocks.{l}.ln1.hook_in"].double() - cache[f"blocks.{l}.hook_resid_pre"].double()
            )  # resid + attn
        else:
            target = cache[f"blocks.{l}.hook_attn_out"].double()
        torch.testing.assert_close(out, target, rtol=1e-4, atol=1e-5)
        if not rotary and not info.encoder:  # the pattern from x W_QK xᵀ (hook_attn_scores is post-softmax on a Bridge)
            scores = torch.einsum("bpd,hde,hef,bqf->bhpq", x, Aq[l], Bk[l], x)  # x W_QK xᵀ (W_QK includes 1/scale)
            if torch.is_tensor(
                bQ
            ):  # + the bias terms W_QK leaves out: (x W_Q) b_Kᵀ + b_Q (x W_K)ᵀ + b_Q b_Kᵀ, over scale
                xq, xk = torch.einsum("bpd,hde->bphe", x, Aq[l]), torch.einsum("bpd,hed->bphe", x, Bk[l]) / scale
                scores = (
                    scores
                    + torch.einsum("bphe,he->bhp", xq, bK[l])[..., None]
                    + torch.einsum("he,bqhe->bhq", bQ[l], xk)[:, :, None]
                    + (bQ[l] * bK[l]).sum(-1)[None, :, None, None] / scale
                )
            causal = torch.ones(P, P, dtype=torch.bool).tril()
            pattern = torch.softmax(scores.masked_fill(~causal, float("-inf")), dim=-1)
            torch.testing.assert_close(pattern, cache[f"blocks.{l}.attn.hook_pattern"].double(), rtol=1e-4, atol=1e-5)


def test_gqa_groups_and_noun_probe_against_dense(tiny_llama):
    m = tiny_llama
    assert _kv_groups(qk_circuit(m).B[0], m) == [0, 0, 2, 2]
    p = noun_probe(m, ["cat", "dog", "river", "year"], k=3, dtype=torch.float64)
    assert p.nouns == ["cat", "dog", "river"] and p.skipped == ["year"]  # "year" is not in the tiny vocabulary
    l, h = 1, 3
    norm = attention_input_norm(m, l)
    lnE = apply_norm(m.W_E.detach(), norm.kind, norm.gamma, norm.beta, norm.eps)
    q = lnE[p.noun_ids]
    fm = qk_circuit(m)
    dense_qk = fm.A[l, h] @ fm.B[l, h]
    keys = (q @ dense_qk @ lnE.T).topk(3, dim=-1)
    torch.testing.assert_close(p.key_scores[l, h], keys.values, rtol=1e-9, atol=1e-9)
    fo = ov_circuit(m)
    vals = (q @ (fo.A[l, h] @ fo.B[l, h]) @ m.W_E.detach().double().T).topk(3, dim=-1)
    torch.testing.assert_close(p.value_scores[l, h], vals.values, rtol=1e-9, atol=1e-9)
    assert torch.equal(p.value_ids[l, h], vals.indices)
    p32 = noun_probe(m, ["cat", "dog", "river"], k=3)
    assert torch.equal(p32.key_ids[..., 0], p.key_ids[..., 0]) and torch.equal(
        p32.value_ids[..., 0], p.value_ids[..., 0]
    )


def test_noun_probe_frame(tiny_any):
    m = tiny_any
    p = noun_probe(m, k=2, layers=[0], heads=[0, 1])
    f = p.to_frame()
    n = len(p.nouns)
    assert n > 10 and len(f) == 2 * 1 * 2 * n * 2
    assert list(f.columns) == [
        "noun",
        "noun_id",
        "layer",
        "head",
        "circuit",
        "rank",
        "token_id",
        "token",
        "score",
        "is_self",
    ]
    assert set(f.circuit) == {"QK", "OV"} and set(f["head"]) == {0, 1}
    assert f.token.map(type).eq(str).all()
    assert p.self_rates()["self_key"].shape == (1, 2)


def test_nouns_and_single_tokens(tiny_gpt2):
    nouns = load_nouns()
    assert len(nouns) == 100 and len(set(nouns)) == 100
    found = single_token_words(tiny_gpt2, ["cat", "year", "dog"])
    assert [w for w, _, _ in found] == ["cat", "dog"]
    assert all(tiny_gpt2.tokenizer.decode([i]) == s for _, i, s in found)


def test_bad_input(tiny_llama):
    m = tiny_llama
    with pytest.raises(tlgeom.TlgeomError, match=r"layers=2: expected .*\[0, 1\]"):
        singular_directions(m, "QK", layers=2)
    with pytest.raises(tlgeom.TlgeomError, match=r"heads=-1: expected .*\[0, 3\]"):
        singular_directions(m, "OV", heads=-1)
    with pytest.raises(tlgeom.TlgeomError, match=r"\[0, 3\]"):
        noun_probe(m, heads=[0, 4])
    with pytest.raises(tlgeom.TlgeomError, match="circuit"):
        singular_directions(m, "VO")
    with pytest.raises(tlgeom.TlgeomError, match="k=17"):
        singular_directions(m, "QK", k=17)
    with pytest.raises(tlgeom.TlgeomError, match="single token"):
        noun_probe(m, ["xylophone"])
    with pytest.raises(tlgeom.TlgeomError, match="layer"):
        attention_input_norm(m, 5)


def test_plots(tiny_bert):
    import matplotlib

    matplotlib.use("Agg")
    assert len(singular_directions(tiny_bert, "OV", k=2).plot().axes) == 3  # 2 panels + a colorbar
    assert len(noun_probe(tiny_bert, k=2, layers=0).plot().axes) == 4  # 2 panels + 2 colorbars
