"""Traveling Words on the real models: the √d sphere, QK/OV singular directions, the noun probe."""

from __future__ import annotations

import pytest
import torch

from tlgeom.experiments.circuits import noun_probe, ov_circuit, qk_circuit, singular_directions
from tlgeom.experiments.projection import project_trajectory
from tlgeom.experiments.sphere import sphere_report

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["minilm", "smollm2"])
def test_sphere_on_real_models(name, request, paragraph):
    m = request.getfixturevalue(name)
    r = sphere_report(m, paragraph)
    f = r.to_frame()
    print(f"\n[{name}] sphere report\n{r.summary()}")
    assert (f.radius_rel_err_max <= 1e-3).all()  # normalised vectors on the √d sphere (float32, ε included)
    assert (f.eps_rel_err_max <= 1e-6).all()
    assert (f.input_recon_err <= 1e-5).all() and (f.affine_rel_err <= 1e-5).all()
    assert f.raw_norm_mean.notna().all() and len(f) == 2 * m.cfg.n_layers + 1
    assert f.axis_ratio.notna().all() and f.offset_ratio.notna().all()
    if name == "minilm":  # post-LN BERT: LayerNorm hyperplane, embedding LN first, no MLM-head LN
        assert (f.ones_cos_max < 1e-6).all() and f.name.iloc[0] == "embed_ln" and "ln_final" not in set(f.name)
        assert f.beta_norm.min() > 0  # trained biases displace the sphere
    else:  # RMSNorm: no hyperplane, no β; the component along 1 is measured, not constrained
        assert set(f.kind) == {"RMSNorm"} and (f.beta_norm == 0).all()
        assert f.ones_cos_mean.min() > 1e-4
        assert f.raw_norm_mean.iloc[-1] > 10 * f.raw_norm_mean.iloc[0]  # residual norms grow with depth


def test_singular_directions_smollm2(smollm2):
    m = smollm2
    assert (m.cfg.n_heads, m.cfg.n_key_value_heads) == (9, 3)
    for circuit in ("QK", "OV"):
        sd = singular_directions(m, circuit, layers=[0, 29], k=5, n_nearest=5)
        fm = qk_circuit(m) if circuit == "QK" else ov_circuit(m)
        dense = fm.A[[0, 29]] @ fm.B[[0, 29]]
        err = float(((sd.reconstruct() - dense).norm(dim=(-2, -1)) / dense.norm(dim=(-2, -1))).max())
        orth = float((sd.U.transpose(-1, -2) @ sd.U - torch.eye(64, dtype=torch.float64)).abs().max())
        assert err < 1e-4 and orth < 1e-10
        if circuit == "QK":  # signs stable across calls
            again = singular_directions(m, circuit, layers=[0, 29], k=5, n_nearest=5)
            assert torch.equal(again.U, sd.U) and torch.equal(again.right_ids, sd.right_ids)
        tok = m.tokenizer
        assert all(tok.decode([int(i)]) == s for i, s in zip(sd.left_ids[1, 0, 0], sd.left_tokens[1][0][0]))
        r99 = sd.rank_at(0.99)
        print(
            f"\n[smollm2 {circuit}] reconstruction {err:.1e}, orthonormality {orth:.1e}; rank at 99% energy "
            f"(of 64): layer 0 {r99[0].tolist()}, layer 29 {r99[1].tolist()}"
        )
        print(sd.table(29, 0, n=3))


def test_singular_directions_and_probe_minilm(minilm):
    m = minilm
    sd = singular_directions(m, "OV", k=3, n_nearest=3)
    fm = ov_circuit(m)
    err = float(((sd.reconstruct() - fm.A @ fm.B).norm(dim=(-2, -1)) / (fm.A @ fm.B).norm(dim=(-2, -1))).max())
    assert err < 1e-4
    p = noun_probe(m)
    rates = p.self_rates()
    print(
        f"\n[minilm] noun probe: {len(p.nouns)} single-token nouns (skipped {p.skipped}); OV reconstruction {err:.1e}"
    )
    print("  nouns among their own top-5 keys, by layer:", rates["self_key"].mean(1).numpy().round(3).tolist())
    print("  nouns among their own value tokens, by layer:", rates["self_value"].mean(1).numpy().round(3).tolist())
    f = p.to_frame()
    assert len(p.nouns) >= 90 and len(f) == 2 * 6 * 12 * len(p.nouns) * 5


def test_noun_probe_smollm2_layers(smollm2):
    p = noun_probe(smollm2, layers=[0, 29])
    rates = p.self_rates()
    f = p.to_frame()
    print(f"\n[smollm2] noun probe: {len(p.nouns)} single-token nouns; layers 0/29")
    print(
        "  self-key rate:",
        rates["self_key"].mean(1).numpy().round(3).tolist(),
        " self-value rate:",
        rates["self_value"].mean(1).numpy().round(3).tolist(),
    )
    print(
        f[(f.noun == "dog") & (f.layer == 29) & (f.circuit == "OV") & (f["rank"] < 3)][["head", "token"]]
        .groupby("head")
        .token.apply(list)
        .to_dict()
    )
    assert len(p.nouns) >= 90 and set(f.layer) == {0, 29}


def test_projection_smollm2(smollm2):
    tp = project_trajectory(smollm2, "To kill two birds with one stone")
    assert tp.coords.shape[1:] == (31, 2) and torch.isfinite(tp.coords).all()
    ratio = tp.projection.explained_variance_ratio
    print(f"\n[smollm2] PCA of E: explained variance {ratio.numpy().round(4).tolist()}")
