"""Curvature metrics: closed forms, invariances (hypothesis), NaN masking, normalised space,
across-token curvature, streaming = tensor path, the landscape.

Tolerances: float64 closed forms 1e-9 (angles via atan2 are accurate to ~1e-15 rad); model
states are float32, so comparisons against the model's own float32 normalisation use 1e-5.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tlgeom
from tlgeom.experiments.landscape import curvature_landscape
from tlgeom.geometry.curvature import (
    interior_angles,
    length_to_chord,
    normalize_states,
    null_sd_thresholds,
    sequence_curvature,
    sequence_turning_angles,
    sharp_flat_counts,
    step_norms,
    straightening,
    turning_angles,
)
from tlgeom.models import _compat
from tlgeom.models.conventions import model_normalization
from tlgeom.models.streaming import (
    NormalizedLengthToChord,
    NormalizedStepNorms,
    NormalizedTurningAngles,
    SequenceTurningAngles,
)


def _rotation(d: int, gen: torch.Generator) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _polygon(alpha: float, n_steps: int, d: int, gen: torch.Generator, step: float = 1.0) -> torch.Tensor:
    """A planar walk turning by exterior angle alpha at every vertex, in a random plane of R^d."""
    k = torch.arange(n_steps, dtype=torch.float64)
    steps2 = step * torch.stack([torch.cos(k * alpha), torch.sin(k * alpha)], -1)
    pts2 = torch.cat([torch.zeros(1, 2, dtype=torch.float64), steps2.cumsum(0)])
    basis = _rotation(d, gen)[:, :2]
    return pts2 @ basis.T + torch.randn(d, generator=gen, dtype=torch.float64)


# --- closed forms ----------------------------------------------------------------------------


def test_straight_line_is_zero():
    gen = torch.Generator().manual_seed(1)
    direction = torch.randn(7, generator=gen, dtype=torch.float64)
    t = torch.rand(10, generator=gen, dtype=torch.float64).sort().values * 5  # uneven spacing
    x = t[:, None] * direction + 3.0
    assert torch.allclose(turning_angles(x), torch.zeros(8, dtype=torch.float64), atol=1e-7)
    assert torch.allclose(length_to_chord(x), torch.tensor(1.0, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(interior_angles(x), torch.full((8,), math.pi, dtype=torch.float64), atol=1e-7)


@pytest.mark.parametrize("alpha_deg", [5.0, 30.0, 72.0, 90.0, 120.0, 170.0])
def test_regular_polygon_turns_by_its_exterior_angle(alpha_deg):
    alpha = math.radians(alpha_deg)
    gen = torch.Generator().manual_seed(int(alpha_deg))
    x = _polygon(alpha, 12, 9, gen)
    a = turning_angles(x)
    assert a.shape == (11,)
    torch.testing.assert_close(a, torch.full_like(a, alpha), rtol=0, atol=1e-9)
    # chord of a regular polygon path: |Σ e^{ikα}| = |sin(nα/2) / sin(α/2)|
    n = 12
    chord = abs(math.sin(n * alpha / 2) / math.sin(alpha / 2))
    if chord > 1e-6:
        torch.testing.assert_close(length_to_chord(x), torch.tensor(n / chord, dtype=torch.float64), rtol=1e-9, atol=0)


@pytest.mark.parametrize("d", [16, 256])
def test_isotropic_gaussian_steps_mean_half_pi_std_inv_sqrt_d(d):
    gen = torch.Generator().manual_seed(d)
    x = torch.randn(4000, 6, d, generator=gen, dtype=torch.float64).cumsum(-2)
    a = turning_angles(x).flatten()
    n = a.numel()
    # exact: cos θ has variance 1/d, so sd(θ) ≈ 1/√d (to O(1/d^{3/2}))
    sd = a.std().item()
    assert abs(a.mean().item() - math.pi / 2) < 4 * sd / math.sqrt(n)
    assert abs(sd * math.sqrt(d) - 1) < 0.03 + 1.5 / d
    assert abs(torch.cos(a).var().item() * d - 1) < 0.05


def test_interior_is_pi_minus_turning():
    x = torch.randn(3, 8, 5, dtype=torch.float64)
    torch.testing.assert_close(interior_angles(x), math.pi - turning_angles(x))


# --- invariances (hypothesis) ------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    d=st.integers(2, 12),
    n=st.integers(3, 9),
    scale=st.floats(1e-3, 1e3),
    shift=st.floats(-100, 100),
)
def test_invariant_under_rotation_translation_scale(seed, d, n, scale, shift):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, n, d, generator=gen, dtype=torch.float64)
    q = _rotation(d, gen)
    y = scale * (x @ q.T) + shift * torch.randn(d, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(turning_angles(y), turning_angles(x), rtol=0, atol=1e-9)
    torch.testing.assert_close(length_to_chord(y), length_to_chord(x), rtol=1e-9, atol=0)
    torch.testing.assert_close(step_norms(y), scale * step_norms(x), rtol=1e-9, atol=0)
    s = torch.randn(n, 4, d, generator=gen, dtype=torch.float64)  # [pos, point, d]
    s2 = scale * (s @ q.T) + shift
    torch.testing.assert_close(sequence_turning_angles(s2), sequence_turning_angles(s), rtol=0, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), d=st.integers(3, 12), scale=st.floats(1e-2, 1e2))
def test_normalized_space_is_invariant_to_per_point_scale(seed, d, scale):
    """The normalised space ignores each state's length (what the next LayerNorm reads)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(6, d, generator=gen, dtype=torch.float64) * 3
    per_point = torch.rand(6, 1, generator=gen, dtype=torch.float64) * scale + 0.1
    for norm in ("rms", "layernorm"):
        a = turning_angles(x, space="normalized", norm=norm, eps=0.0)
        b = turning_angles(x * per_point, space="normalized", norm=norm, eps=0.0)
        torch.testing.assert_close(a, b, rtol=0, atol=1e-9)


# --- NaN masking -------------------------------------------------------------------------------


def test_zero_step_and_padding_are_nan_and_masked():
    x = torch.randn(2, 6, 4, dtype=torch.float64)
    x[0, 3] = x[0, 2]  # a zero-length step (2 → 3)
    a = turning_angles(x)
    assert torch.isnan(a[0, 1]) and torch.isnan(a[0, 2])  # both angles touching the zero step
    assert not torch.isnan(a[0, [0, 3]]).any() and not torch.isnan(a[1]).any()
    c = sharp_flat_counts(a, sharp_deg=0.0, flat_deg=0.0)  # every defined angle is "sharp"
    assert int(c.valid) == a.numel() - 2 and int(c.sharp) == a.numel() - 2
    per_vertex = sharp_flat_counts(a, 0.0, 0.0, dim=0)
    assert per_vertex.valid.tolist() == [2, 1, 1, 2]
    # a constant trajectory: LTC undefined
    assert torch.isnan(length_to_chord(torch.ones(4, 3))).item()


def test_trajectories_padding_is_nan(tiny_gpt2):
    t = tlgeom.record_trajectories(tiny_gpt2, ["the cat sat on the mat", "a dog"])
    a = turning_angles(t)
    assert torch.isnan(a[1, 3:]).all() and not torch.isnan(a[0]).any()
    assert torch.isnan(sequence_turning_angles(t)[1, :, 2:]).all()
    c = sequence_curvature(t)
    assert not torch.isnan(c).any()  # nanmean over the valid positions
    assert sharp_flat_counts(a).valid.item() == int(t.mask.sum()) * a.shape[-1]


def test_sharp_flat_thresholds():
    a = torch.deg2rad(torch.tensor([[10.0, 69.9, 70.0, 90.0, 110.0, 150.0, float("nan")]], dtype=torch.float64))
    c = sharp_flat_counts(a)
    assert (int(c.sharp), int(c.flat), int(c.valid)) == (2, 3, 6)
    c = sharp_flat_counts(a, sharp_deg=150.0, flat_deg=10.0)
    assert (int(c.sharp), int(c.flat)) == (1, 1)
    # per-vertex thresholds broadcast
    b = torch.deg2rad(torch.tensor([[80.0, 100.0], [95.0, 60.0]], dtype=torch.float64))
    c = sharp_flat_counts(b, sharp_deg=torch.tensor([90.0, 120.0]), flat_deg=torch.tensor([85.0, 70.0]), dim=0)
    assert c.sharp.tolist() == [1, 0] and c.flat.tolist() == [1, 1]
    with pytest.raises(tlgeom.TlgeomError, match="sharp_deg"):
        sharp_flat_counts(a, sharp_deg=50.0, flat_deg=60.0)


def test_null_sd_thresholds_closed_form():
    a = torch.deg2rad(torch.tensor([[80.0, 10.0], [100.0, 30.0], [float("nan"), 20.0]], dtype=torch.float64))
    s, f = null_sd_thresholds(a, k=2.0, dim=0)
    sd0 = math.sqrt(((80 - 90) ** 2 + (100 - 90) ** 2) / 1)
    torch.testing.assert_close(s, torch.tensor([90 + 2 * sd0, 20 + 2 * 10.0], dtype=torch.float64))
    torch.testing.assert_close(f, torch.tensor([90 - 2 * sd0, 20 - 2 * 10.0], dtype=torch.float64))


# --- normalised space ----------------------------------------------------------------------------


def test_normalize_states_matches_torch():
    x = torch.randn(3, 5, 16, dtype=torch.float64) * 4 + 1
    torch.testing.assert_close(
        normalize_states(x, "layernorm", 1e-5), torch.nn.functional.layer_norm(x, (16,), eps=1e-5)
    )
    torch.testing.assert_close(normalize_states(x, "rms", 1e-6), torch.nn.functional.rms_norm(x, (16,), eps=1e-6))


@pytest.mark.parametrize("fixture", ["tiny_gpt2", "tiny_llama"])
def test_normalized_equals_the_models_own_normalisation(fixture, request):
    """Point l normalised = what block l's ln1 computes before its gain (hook_normalized)."""
    m = request.getfixturevalue(fixture)
    norm, eps = model_normalization(m)
    assert norm == ("rms" if fixture == "tiny_llama" else "layernorm")
    t = tlgeom.record_trajectories(m, "the cat sat on the mat")
    names = [f"blocks.{l}.ln1.hook_normalized" for l in range(m.cfg.n_layers)]
    _, cache = m.run_with_cache(t.tokens, names_filter=names, return_type=None)
    xn = normalize_states(t.states, norm, eps)
    for l in range(m.cfg.n_layers):
        torch.testing.assert_close(xn[:, :, l], cache[names[l]].to(torch.float64), rtol=1e-5, atol=1e-5)


# --- across-token curvature ----------------------------------------------------------------------


def test_sequence_curvature_closed_forms():
    gen = torch.Generator().manual_seed(3)
    # layer 0: tokens on a polygon turning 60°, layer 1: on a straight line, layer 2: 150°
    layers = [
        _polygon(math.radians(60), 9, 6, gen),
        torch.arange(10, dtype=torch.float64)[:, None] * torch.ones(6),
        _polygon(math.radians(150), 9, 6, gen),
    ]
    x = torch.stack(layers, dim=1)  # [pos=10, point=3, d=6]
    a = sequence_turning_angles(x)
    assert a.shape == (3, 8)
    torch.testing.assert_close(a[0], torch.full((8,), math.radians(60), dtype=torch.float64), rtol=0, atol=1e-9)
    torch.testing.assert_close(a[1], torch.zeros(8, dtype=torch.float64), rtol=0, atol=1e-7)
    c = sequence_curvature(x)
    torch.testing.assert_close(straightening(x), c[:1] - c)
    assert straightening(x)[1] > 1.0 > straightening(x)[0] == 0


# --- streaming = tensor path ---------------------------------------------------------------------


def test_streaming_metrics_equal_tensor_functions(tiny_any):
    m = tiny_any
    texts = ["the big dog ran down the road", "a red car"]
    t = tlgeom.record_trajectories(m, texts)
    try:
        norm, eps = model_normalization(m)
    except tlgeom.TlgeomError:
        norm, eps = "layernorm", 1e-5
    out = tlgeom.stream(
        m,
        texts,
        [
            NormalizedTurningAngles(norm, eps),
            NormalizedStepNorms(norm, eps),
            NormalizedLengthToChord(norm, eps),
            SequenceTurningAngles(),
            SequenceTurningAngles(norm, eps, name="normalized_sequence_turning_angles"),
        ],
    )
    kw = dict(space="normalized", norm=norm, eps=eps)
    torch.testing.assert_close(out["normalized_turning_angles"], turning_angles(t, **kw), equal_nan=True)
    torch.testing.assert_close(out["normalized_step_norms"], step_norms(t, **kw), equal_nan=True)
    torch.testing.assert_close(out["normalized_length_to_chord"], length_to_chord(t, **kw), equal_nan=True)
    # two metrics of one class, told apart by name=; stream hands each the padding mask
    for key, tensor_kw in (("sequence_turning_angles", {}), ("normalized_sequence_turning_angles", kw)):
        torch.testing.assert_close(out[key], sequence_turning_angles(t, **tensor_kw), equal_nan=True)
    for norm_kw, tensor_kw in (({}, {}), ({"norm": norm, "eps": eps}, kw)):
        got = tlgeom.stream(m, texts, [SequenceTurningAngles(mask=t.mask, **norm_kw)])["sequence_turning_angles"]
        torch.testing.assert_close(got, sequence_turning_angles(t, **tensor_kw), equal_nan=True)
    one = tlgeom.stream(m, texts[0], [SequenceTurningAngles()])["sequence_turning_angles"]
    # a batch of one vs a padded batch: float32 model arithmetic differs slightly (tolerance 1e-5)
    torch.testing.assert_close(one[0], sequence_turning_angles(t)[0, :, : one.shape[-1]], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("space", ["raw", "normalized"])
def test_landscape_equals_tensor_path(tiny_llama, space):
    text = "the cat sat on the mat and the dog ran up the road"
    land = curvature_landscape(tiny_llama, text, space=space)
    t = tlgeom.record_trajectories(tiny_llama, text)
    kw = {} if space == "raw" else dict(space="normalized", norm="rms", eps=tiny_llama.cfg.eps)
    torch.testing.assert_close(land.angles, turning_angles(t, **kw)[0], rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(land.length_to_chord, length_to_chord(t, **kw)[0], equal_nan=True)
    assert land.str_tokens == t.str_tokens[0] and land.vertex_labels == t.point_labels[1:-1]
    f = land.to_frame()
    assert len(f) == land.angles.numel()
    assert set(f.columns) >= {"pos", "token", "vertex", "label", "turning_angle_rad", "turning_angle_deg"}
    torch.testing.assert_close(torch.tensor(f.turning_angle_deg.values), land.degrees.flatten().cpu(), equal_nan=True)


def test_landscape_sublayer_and_plot(tiny_gpt2):
    land = curvature_landscape(tiny_gpt2, "the sun and the moon and the sea and the sky", points="sublayer")
    assert land.angles.shape[1] == 2 * tiny_gpt2.cfg.n_layers - 1
    ax = land.plot().axes[0]  # plot() returns the Figure
    assert ax.get_ylabel() == "token" and len(ax.get_yticklabels()) == land.angles.shape[0]
    assert ax.figure.axes[-1].get_ylabel().startswith("turning angle")  # the colorbar
    import matplotlib.pyplot as plt

    plt.close("all")


def test_landscape_removes_hooks_on_error(tiny_gpt2, monkeypatch):
    before = _compat.count_hooks(tiny_gpt2)

    def boom(self, index, delta, prev_delta):
        raise RuntimeError("boom")

    monkeypatch.setattr(tlgeom.TurningAngles, "step", boom)
    with pytest.raises(RuntimeError, match="boom"):
        curvature_landscape(tiny_gpt2, "the cat sat")
    assert _compat.count_hooks(tiny_gpt2) == before


def test_bad_input(tiny_gpt2):
    x = torch.randn(5, 4)
    with pytest.raises(tlgeom.TlgeomError, match="space"):
        turning_angles(x, space="curved")
    with pytest.raises(tlgeom.TlgeomError, match="norm"):
        turning_angles(x, space="normalized", norm="batchnorm")
    with pytest.raises(tlgeom.TlgeomError, match="x="):
        turning_angles([[1.0, 2.0]])
    with pytest.raises(tlgeom.TlgeomError, match="at least 3 points"):
        turning_angles(torch.randn(2, 4))
    with pytest.raises(tlgeom.TlgeomError, match="at least 3 positions"):
        sequence_turning_angles(torch.randn(2, 3, 4))
    with pytest.raises(tlgeom.TlgeomError, match="text"):
        curvature_landscape(tiny_gpt2, ["a", "b"])
    with pytest.raises(tlgeom.TlgeomError, match="space"):
        curvature_landscape(tiny_gpt2, "the cat", space="curved")
    with pytest.raises(tlgeom.TlgeomError, match="norm"):
        NormalizedTurningAngles(norm="l2")


def test_arguments_are_checked_once_at_the_entry(tiny_gpt2, monkeypatch):
    """curvature_test checks its settings once (check_settings) and the inner steps trust them: the
    shared checks run once per call, not again in compare_to_nulls."""
    from tlgeom.experiments import curvature as C

    calls = {"space": 0, "n_sims": 0, "alpha": 0}
    for name, key in (("check_space", "space"), ("check_n_sims", "n_sims"), ("check_alpha", "alpha")):
        original = getattr(C, name)

        def counted(*a, _f=original, _k=key, **k):
            calls[_k] += 1
            return _f(*a, **k)

        monkeypatch.setattr(C, name, counted)
    C.curvature_test(tiny_gpt2, ["the cat sat on the mat .", "a dog ran home ."], n_sims=9, nulls=["rotation"])
    assert calls == {"space": 1, "n_sims": 1, "alpha": 1}
    settings = C.check_settings(["rotation"], 9, 0)
    assert settings.n_sims == 9 and settings.norm == "rms" and settings.nulls[0].name == "rotation"


def test_untrained_null_against_several_initialisations(tiny_gpt2):
    """init_seeds=3: the untrained rows test against every initialisation (p = the largest per-initialisation
    sign-flip p), report the mean effect and the per-initialisation range; one seed is the old test."""
    from tlgeom.experiments import curvature as C

    texts = ["the cat sat on the mat .", "a dog ran home fast .", "the river bank was wet .", "we ate cake ."]
    one = [C.curvature_test(tiny_gpt2, texts, n_sims=9, nulls=["untrained"], init_seed=s).tests() for s in (0, 1, 2)]
    three = C.curvature_test(tiny_gpt2, texts, n_sims=9, nulls=["untrained"], init_seeds=3)
    t = three.tests()
    assert three.init_seeds == [0, 1, 2] and (t.n_inits == 3).all()
    assert three.headline()["init_seeds"] == [0, 1, 2]
    for stat in t.statistic:
        row = t[t.statistic == stat].iloc[0]
        singles = [float(o[o.statistic == stat].p.iloc[0]) for o in one]
        effects = [float(o[o.statistic == stat].effect.iloc[0]) for o in one]
        if stat != "sharp_flat":  # sharp_flat's thresholds pool every initialisation: not the single tests'
            assert row.p == pytest.approx(max(singles))
            assert row.effect == pytest.approx(np.mean(effects))
            assert row.init_effect_min == pytest.approx(min(effects))
        assert "against 3 initialisations" in row.note
    with pytest.raises(tlgeom.TlgeomError, match="init_seeds"):
        C.curvature_test(tiny_gpt2, texts, n_sims=9, nulls=["untrained"], init_seeds=[1, 1])
