"""Known defects of the library layers (issue 19): each test failed before its fix."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import tlgeom
from tlgeom import TlgeomError
from tlgeom.geometry import riemann as R
from tlgeom.geometry.curvature import (
    length_to_chord,
    normalize_states,
    safe_norm,
    sequence_turning_angles,
    step_norms,
    turning_angles,
)
from tlgeom.models import _compat, tiny_model
from tlgeom.models.streaming import SequenceTurningAngles, StepNorms, TurningAngles, stream

# ------------------------------------------------------------------------------- stream


def test_two_metrics_of_one_class_both_kept(tiny_llama):
    """Two TurningAngles, one on raw, one renamed: both results come back (one silently overwrote the other)."""
    t = tlgeom.record_trajectories(tiny_llama, "the cat sat on the mat")
    out = stream(tiny_llama, "the cat sat on the mat", [TurningAngles(), TurningAngles(name="again")])
    torch.testing.assert_close(out["turning_angles"], turning_angles(t), rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(out["again"], out["turning_angles"], rtol=0, atol=0, equal_nan=True)


def test_duplicate_metric_names_refused_before_the_pass(tiny_llama):
    before = _compat.count_hooks(tiny_llama)
    with pytest.raises(TlgeomError, match="metrics=.*distinct metric names"):
        stream(tiny_llama, "the cat sat", [TurningAngles(), TurningAngles()])
    assert _compat.count_hooks(tiny_llama) == before


def test_sequence_angles_not_masked_on_the_point_axis(tiny_gpt2):
    """pos == n_points: the [batch, point, pos-2] result was NaN-filled as if it were [batch, pos, ...]."""
    texts = ["the cat sat on", "the cat sat"]  # 5 and 4 positions with [BOS]; sublayer points: 5
    t = tlgeom.record_trajectories(tiny_gpt2, texts, points="sublayer")
    assert t.states.shape[1] == t.n_points == 5
    got = stream(tiny_gpt2, texts, [SequenceTurningAngles()], points="sublayer")["sequence_turning_angles"]
    assert got.shape == (2, 5, 3)
    # sequence 1's first angle (positions 0, 1, 2) is real at every point: point 4 was NaN-filled before
    assert torch.isfinite(got[1, :, 0]).all()
    torch.testing.assert_close(got, sequence_turning_angles(t), equal_nan=True)


def test_one_layer_model_turning_angles_refused(tmp_path):
    m = tiny_model("gpt2", n_layers=1)
    before = _compat.count_hooks(m)
    with pytest.raises(TlgeomError, match="model: TurningAngles needs at least 3 trajectory points.*sublayer"):
        stream(m, "the cat sat")
    with pytest.raises(TlgeomError, match="model: TurningAngles needs at least 3"):
        tlgeom.curvature_landscape(m, "the cat sat")
    assert _compat.count_hooks(m) == before
    # step norms need only 2 points; the sublayer points give a 1-layer model 3
    assert stream(m, "the cat sat", [StepNorms()])["step_norms"].shape == (1, 4, 1)
    assert tlgeom.curvature_landscape(m, "the cat sat", points="sublayer").angles.shape == (4, 1)


def test_sequence_angles_too_few_positions(tiny_gpt2):
    with pytest.raises(TlgeomError, match="inputs: SequenceTurningAngles needs at least 3 token positions"):
        stream(tiny_gpt2, torch.tensor([[5, 6]]), [SequenceTurningAngles()])


def test_result_before_run():
    with pytest.raises(TlgeomError, match=r"TurningAngles.result\(\): no trajectory points.*run it first"):
        TurningAngles().result()
    with pytest.raises(TlgeomError, match="run it first"):
        SequenceTurningAngles().result()


# ------------------------------------------------------------------------------- non-finite / overflow


def _states(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 6, 16, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("scale", [1e300, 1e-300, 1e-170])
def test_huge_and_tiny_states_give_the_same_geometry(scale):
    """1e300 squared overflows (angles were NaN and dropped out); 1e-170 squared underflows."""
    x = _states()
    torch.testing.assert_close(turning_angles(x * scale), turning_angles(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(length_to_chord(x * scale), length_to_chord(x), rtol=1e-12, atol=0)
    torch.testing.assert_close(step_norms(x * scale) / scale, step_norms(x), rtol=1e-12, atol=0)
    torch.testing.assert_close(normalize_states(x * scale, eps=0.0), normalize_states(x, eps=0.0), rtol=1e-12, atol=0)
    torch.testing.assert_close(
        turning_angles(x * scale, space="normalized", eps=0.0), turning_angles(x, space="normalized", eps=0.0)
    )
    assert torch.isfinite(turning_angles(x * scale)).all()


def test_safe_norm_against_the_exact_value():
    v = torch.tensor([3e300, 4e300], dtype=torch.float64)
    assert torch.linalg.vector_norm(v) == math.inf  # what torch does
    assert float(safe_norm(v)) == pytest.approx(5e300, rel=1e-15)
    assert float(safe_norm(v * 1e-610)) == pytest.approx(5e-310, rel=1e-6)  # subnormal, not 0


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan])
@pytest.mark.parametrize("fn", [turning_angles, length_to_chord, step_norms, sequence_turning_angles])
def test_non_finite_state_of_a_real_token_is_named(fn, bad):
    x = _states()
    x[1, 2, 4, 7] = bad
    with pytest.raises(TlgeomError, match=r"x: 1 non-finite value\(s\).*index \(1, 2, 4, 7\)"):
        fn(x)


def test_padding_nan_stays_allowed(tiny_gpt2):
    t = tlgeom.record_trajectories(tiny_gpt2, ["the cat sat on the mat", "a dog"])
    a = turning_angles(t)
    assert torch.isnan(a[1, ~t.mask[1]]).all() and torch.isfinite(a[t.mask]).all()
    x = _states()
    x[0, 1] = math.nan  # a whole trajectory of NaN marks padding in a plain tensor too
    assert torch.isnan(turning_angles(x)[0, 1]).all() and torch.isfinite(turning_angles(x)[1]).all()


def test_all_zero_states_are_undefined_not_an_error():
    a = turning_angles(torch.zeros(2, 5, 4))
    assert a.shape == (2, 3) and torch.isnan(a).all()


# ------------------------------------------------------------------------------- riemann


def _degenerate(x):  # polar-like metric that vanishes at x0 = 0
    return torch.diag(torch.stack([torch.ones_like(x[0]), x[0] ** 2]))


def _nan_metric(x):
    return torch.eye(2, dtype=x.dtype) * (x[0] / x[0] - 1) * math.nan


@pytest.mark.parametrize("fn", [R.scalar_curvature, R.christoffel_symbols])
def test_singular_metric_named(fn):
    x = torch.tensor([[1.0, 0.2], [0.0, 0.3]], dtype=torch.float64)
    with pytest.raises(
        TlgeomError, match=r"metric_fn: g\(x\) is not positive definite at point 1.*smallest eigenvalue 0"
    ):
        fn(_degenerate, x)
    with pytest.raises(TlgeomError, match=r"metric_fn: g\(x\) has non-finite entries at point 0"):
        fn(_nan_metric, x)
    assert torch.isfinite(fn(_degenerate, x[:1])).all()  # fine away from the singular point


def test_degenerate_chart_named():
    def f(x):  # rank 1 immersion at every point
        return torch.stack([x[0] + x[1], (x[0] + x[1]) ** 2, torch.zeros_like(x[0])])

    with pytest.raises(TlgeomError, match=r"f: g\(x\) is not positive definite at point 0"):
        R.pullback_scalar_curvature(f, torch.tensor([[0.3, 0.1]], dtype=torch.float64))


# ------------------------------------------------------------------------------- dtype and precision


@pytest.mark.parametrize(
    "name, dtype",
    [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16), ("float64", torch.float64)],
)
def test_dtype_names(name, dtype):
    from tlgeom._args import check_dtype

    assert check_dtype(name) is dtype and check_dtype(dtype) is dtype


@pytest.mark.unchecked
@pytest.mark.parametrize("dtype", ["int8", torch.int32, torch.bool, 32, "float"])
def test_load_model_bad_dtype(dtype):
    with pytest.raises(TlgeomError, match="dtype=.*'float32', 'float64', 'float16', 'bfloat16'"):
        tlgeom.load_model("smollm2-135m", dtype=dtype)


def test_bf16_model_warns_and_records_its_dtype():
    m = tiny_model("llama", seed=0)
    text = "the cat sat on the mat and the dog ran"
    ref = tlgeom.curvature_landscape(m, text)
    assert ref.forward_dtype == "float32"
    m16 = tiny_model("llama", seed=0).to(torch.bfloat16)
    m16.cfg.dtype = torch.bfloat16
    with pytest.warns(tlgeom.PrecisionWarning, match="bfloat16.*dtype='float32'"):
        land = tlgeom.curvature_landscape(m16, text)
    assert land.forward_dtype == "bfloat16"
    # the reason for the warning: bf16 angles are visibly off the float32 ones
    assert float((land.degrees - ref.degrees).abs().nanmean()) > 0.01
    with warnings.catch_warnings():  # once per model
        warnings.simplefilter("error", tlgeom.PrecisionWarning)
        t = tlgeom.record_trajectories(m16, text)
        out = stream(m16, text)
    assert t.forward_dtype == "bfloat16" and out["forward_dtype"] == "bfloat16"


def test_float32_model_does_not_warn(tiny_gpt2):
    with warnings.catch_warnings():
        warnings.simplefilter("error", tlgeom.PrecisionWarning)
        assert tlgeom.record_trajectories(tiny_gpt2, "the cat").forward_dtype == "float32"


def test_results_record_the_forward_dtype(tiny_gpt2):
    from tlgeom.experiments.structure import curvature_vs_structure

    text = "the cat sat on the mat . the dog ran up the road and the man saw the big red ball in the sky"
    assert tlgeom.project_trajectory(tiny_gpt2, "the dog ran").forward_dtype == "float32"
    assert curvature_vs_structure(tiny_gpt2, text, n_perm=99).forward_dtype == "float32"
    r = tlgeom.attention_vs_heat_kernel(tiny_gpt2, text, 0, heads=[0], n_t=3, n_sigma=3)
    assert r.forward_dtype == "float32"
    both = tlgeom.attention_vs_heat_kernel(tiny_gpt2, text, [1, 0], heads=[0], n_t=3, n_sigma=3)
    assert [h.layer for h in both] == [0, 1]
