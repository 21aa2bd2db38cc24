"""The eclipse experiment on the real offline models (smollm2-135m, minilm-l6).

Tests assert computations; the verdicts about the models (do meaning-changing edits deflect more
than controls?) are printed, with their numbers, whatever they turn out to be.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tlgeom._args import CONTROLS
from tlgeom.experiments.eclipse import _sign_flip_pvalue, control_edits, deflection, meaning_vs_control, minimal_pairs
from tlgeom.experiments.patching import patch_attribution, restored_fraction
from tlgeom.models import _compat

pytestmark = pytest.mark.integration

# float32 states of runs of different lengths: ~1e-7 relative noise per layer, growing with depth
CAUSAL_RTOL = 1e-5
PATCH_TOL = 1e-5  # absolute, on the restored fraction
SHORT = ("She walked to the river bank.", "She walked to the savings bank.", "bank")  # 8 smollm2 tokens


def test_decoder_edit_after_target_leaves_trajectory_unchanged(smollm2):
    after = [deflection(smollm2, p, controls=0) for p in minimal_pairs("after_target")]
    before = [deflection(smollm2, p, controls=0) for p in minimal_pairs("homonym")[:6]]
    worst_after = max(float(d.relative_distance.max()) for d in after)
    least_before = min(float(d.relative_distance.max()) for d in before)
    print(
        f"\nsmollm2: edits after the target: max ‖e−c‖/‖c‖ over points and pairs = {worst_after:.2e}; "
        f"edits before it: smallest per-pair max = {least_before:.3f}"
    )
    assert worst_after < CAUSAL_RTOL
    assert least_before > 1e-2
    for d in before:  # the target's own embedding is untouched by an edit elsewhere
        assert float(d.distance[0]) == 0.0


def test_encoder_sees_edits_after_the_target(minilm):
    after = [deflection(minilm, p, controls=0) for p in minimal_pairs("after_target")]
    vals = [float(d.relative_distance[-1]) for d in after]
    print(
        f"\nminilm (bidirectional): edits after the target move its last-layer state by ‖e−c‖/‖c‖ = "
        f"{np.round(vals, 3).tolist()}"
    )
    assert min(vals) > 1e-3


def _tl_subset(model, res, layers):
    """TransformerLens' get_act_patch_resid_pre on the given layers (all positions), same metric."""
    from transformer_lens.patching import get_act_patch_resid_pre

    info = _compat.check_model(model)
    final = _compat.point_hook_names(model, "resid", info)[-1]
    ct, _ = _compat.tokenize(model, SHORT[0], info)
    et, _ = _compat.tokenize(model, SHORT[1], info)
    assert ct.shape == et.shape  # TransformerLens needs equal lengths
    _, cache = model.run_with_cache(ct, names_filter=lambda n: n.endswith("hook_resid_pre"))
    grab = {}

    def cap(act, hook):
        grab["x"] = act[0, res.target_pos].detach()
        return act

    df = pd.DataFrame([(l, p) for l in layers for p in range(et.shape[1])], columns=["layer", "pos"])
    with model.hooks(fwd_hooks=[(final, cap)]):
        ref = get_act_patch_resid_pre(
            model,
            et,
            cache,
            lambda logits: restored_fraction(grab["x"], res.clean_final, res.edited_final),
            index_axis_names=None,
            index_df=df,
        )
    return ref.double(), df


# TransformerLens builds a tensor from the index DataFrame's read-only (copy-on-write) NumPy values
@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable:UserWarning")
@pytest.mark.parametrize("fixture", ["smollm2", "smollm2_hooked"])
def test_patching_equals_transformer_lens_smollm2(fixture, request):
    """Full batched sweep vs TransformerLens' loop on layers 5 and 20 (every position; ~16 passes)."""
    model = request.getfixturevalue(fixture)
    res = patch_attribution(model, *SHORT, progress=False)
    assert res.values.shape == (30, 8) and not torch.isnan(res.values).any()
    ref, df = _tl_subset(model, res, [5, 20])
    ours = res.values[df.layer.to_numpy(), df.pos.to_numpy()]
    err = float((ours - ref).abs().max())
    print(
        f"\n{fixture}: batched sweep vs get_act_patch_resid_pre on {len(df)} cells: max |Δ| = {err:.2e} "
        f"({res.n_run} of {res.values.numel()} cells run in {res.n_batches} batch(es))"
    )
    assert err < PATCH_TOL
    # the edited word at layer 0 carries the whole deflection: patching it back restores the clean run
    assert float(res.values[0, res.str_tokens.index(" savings")]) == pytest.approx(1.0, abs=PATCH_TOL)


@pytest.mark.parametrize("fixture,name", [("smollm2", "smollm2-135m"), ("minilm", "minilm-l6")])
def test_meaning_vs_control(fixture, name, request):
    from scipy.stats import wilcoxon

    model = request.getfixturevalue(fixture)
    r = meaning_vs_control(model, seed=0, model_name=name)  # 39 matched controls per pair
    f = r.frame
    print("\n" + r.summary())
    print(f[["pair", "meaning", "control", "toward_meaning", "toward_control"]].round(3).to_string(index=False))
    print(
        r.layers[["label", "effect", "ci_low", "ci_high", "statistic", "p", "p_adjusted"]]
        .round(3)
        .to_string(index=False)
    )
    pairs = minimal_pairs("homonym")
    assert r.n_controls == CONTROLS and r.toward_run
    assert len(f) == len(pairs) >= 14 and not f[["meaning", "control", "toward_meaning"]].isna().any().any()
    assert r.p_wilcoxon == pytest.approx(float(wilcoxon(f["diff"], alternative="greater").pvalue))
    assert r.p_permutation == pytest.approx(_sign_flip_pvalue(f["diff"].to_numpy()))
    assert r.p_toward_permutation == pytest.approx(_sign_flip_pvalue(f["toward_diff"].to_numpy()))
    assert 0 < r.p_permutation <= 1 and 0 < r.p_toward_wilcoxon <= 1
    assert (r.layers.p_adjusted >= r.layers.p - 1e-12).all()
    # the batched per-pair numbers equal an independent single-pair computation with the same controls
    p = pairs[0]
    d = deflection(model, p, controls=[c.edited for c in control_edits(p, seed=0)])
    assert f.meaning[0] == pytest.approx(float(d.angle[1:].rad2deg().mean()), rel=1e-4)
    assert f.control[0] == pytest.approx(float(d.control_angle[:, 1:].rad2deg().mean()), rel=1e-4)


def test_bundled_pair_0_onset_with_39_matched_controls(smollm2):
    """The report's bundled pair 0 and the API on the same texts: same controls, same corrected onset."""
    pair = minimal_pairs("homonym")[0]
    d = deflection(smollm2, pair.clean, pair.edited, pair.target, controls=CONTROLS, seed=0)
    again = deflection(smollm2, pair, seed=0)
    print("\nsmollm2-135m, bundled pair 0:\n" + d.summary())
    print(
        d.tests()[["statistic", "observed", "null_mean", "p", "p_adjusted", "reject"]].round(4).to_string(index=False)
    )
    print(d.controls_frame()[["words", "pos", "slot_pos", "dzipf", "dlen"]].to_string(index=False))
    assert again.control_texts == d.control_texts and again.onset == d.onset
    assert d.n_controls == CONTROLS and all(i["pos_match"] for i in d.control_info)
    t = d.tests()
    assert t.p.between(1 / (CONTROLS + 1), 1).all() and (t.p_adjusted >= t.p).all()
    assert t.p.iloc[0] == 1.0  # the target's own embedding: every deflection is 0 (a tie)
    if d.onset is not None:
        assert t.p_adjusted.iloc[d.onset] <= 0.05 and (t.p_adjusted.iloc[: d.onset] > 0.05).all()
