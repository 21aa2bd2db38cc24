"""One table of bad input over the public API (issue 19).

Each row calls a public function with one bad argument and asserts a :class:`tlgeom.TlgeomError`
whose message names that argument, that no hook is left on the model and that the model's logits
are unchanged after the error (nothing was patched, re-initialised or left half-run).
"""

from __future__ import annotations

import math
import re

import pytest
import torch

import tlgeom
from tlgeom.experiments import heat, projection, riemann, structure
from tlgeom.geometry import curvature as geo
from tlgeom.geometry import heat as geo_heat
from tlgeom.geometry import riemann as geo_riemann
from tlgeom.models import _compat, load, streaming, untrained

M = object()  # stands for the tiny model in a row's arguments
TEXT = "the cat sat on the mat . the dog ran up the road and the man saw the big red ball in the sky"
CLEAN, EDITED, TARGET = "cat sat on the mat .", "dog sat on the mat .", "sat"


def _states(**bad):
    x = torch.randn(2, 4, 5, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for idx, v in bad.items():
        x[tuple(int(c) for c in idx[1:])] = v
    return x


def _singular(x):
    return torch.diag(torch.stack([torch.ones_like(x[0]), x[0] ** 2]))


def _nan_metric(x):
    return torch.eye(2, dtype=x.dtype) * math.nan


PTS = torch.tensor([[0.5, 0.1], [0.0, 0.2]], dtype=torch.float64)

ROWS = [
    # trajectories and streaming: inputs
    ("record/empty", tlgeom.record_trajectories, (M, ""), {}, "inputs"),
    ("record/whitespace", tlgeom.record_trajectories, (M, "   "), {}, "inputs"),
    ("record/int", tlgeom.record_trajectories, (M, 3), {}, "inputs"),
    ("record/empty-list", tlgeom.record_trajectories, (M, []), {}, "inputs"),
    ("record/list-non-str", tlgeom.record_trajectories, (M, ["the cat", 3]), {}, "inputs"),
    ("record/list-empty-str", tlgeom.record_trajectories, (M, ["the cat", ""]), {}, "inputs[1]"),
    ("record/id-too-big", tlgeom.record_trajectories, (M, torch.tensor([[2, 10**6]])), {}, "inputs"),
    ("record/id-negative", tlgeom.record_trajectories, (M, torch.tensor([[-1, 2]])), {}, "inputs"),
    ("record/no-positions", tlgeom.record_trajectories, (M, torch.zeros(1, 0, dtype=torch.long)), {}, "inputs"),
    ("record/float-ids", tlgeom.record_trajectories, (M, torch.ones(1, 3)), {}, "inputs"),
    ("record/over-n_ctx", tlgeom.record_trajectories, (M, "the " * 80), {}, "inputs"),
    ("record/points", tlgeom.record_trajectories, (M, "the cat"), {"points": "layers"}, "points"),
    ("record/dtype-int", tlgeom.record_trajectories, (M, "the cat"), {"dtype": torch.int32}, "dtype"),
    ("record/dtype-name", tlgeom.record_trajectories, (M, "the cat"), {"dtype": "int8"}, "dtype"),
    ("record/not-a-model", tlgeom.record_trajectories, (torch.nn.Linear(2, 2), "the cat"), {}, "model"),
    ("stream/metric-str", tlgeom.stream, (M, "the cat"), {"metrics": ["angles"]}, "metrics"),
    (
        "stream/duplicate-names",
        tlgeom.stream,
        (M, "the cat"),
        {"metrics": [tlgeom.TurningAngles(), tlgeom.TurningAngles()]},
        "metrics",
    ),
    ("stream/points", tlgeom.stream, (M, "the cat"), {"points": "mid"}, "points"),
    (
        "stream/seq-positions",
        tlgeom.stream,
        (M, torch.tensor([[5, 6]])),
        {"metrics": [streaming.SequenceTurningAngles()]},
        "inputs",
    ),
    ("metric/name", tlgeom.TurningAngles, (), {"name": ""}, "name"),
    ("metric/norm", streaming.NormalizedTurningAngles, ("l2",), {}, "norm"),
    # loading
    ("load/name", tlgeom.load_model, ("",), {}, "name"),
    ("load/dtype-name", tlgeom.load_model, ("smollm2-135m",), {"dtype": "int8"}, "dtype"),
    ("load/dtype-int", tlgeom.load_model, ("smollm2-135m",), {"dtype": torch.int32}, "dtype"),
    ("load/api", tlgeom.load_model, ("smollm2-135m",), {"api": "jax"}, "api"),
    ("load/device", tlgeom.load_model, ("smollm2-135m",), {"device": "cuda:97"}, "device"),
    ("load/processed", tlgeom.load_model, ("smollm2-135m",), {"processed": "yes"}, "processed"),
    ("tiny/kind", load.tiny_model, ("t5",), {}, "kind"),
    ("tiny/seed-negative", load.tiny_model, ("gpt2",), {"seed": -1}, "seed"),
    ("tiny/seed-too-big", load.tiny_model, ("gpt2",), {"seed": 2**63}, "seed"),
    ("tiny/n_layers", load.tiny_model, ("gpt2",), {"n_layers": 0}, "n_layers"),
    ("untrained/seed", untrained.untrained_model, (M,), {"seed": -5}, "seed"),
    # geometry: non-finite states, bad space / norm / shapes, singular metrics
    ("angles/inf", tlgeom.turning_angles, (_states(i0123=math.inf),), {}, "x"),
    ("angles/nan-in-token", tlgeom.turning_angles, (_states(i1234=math.nan),), {}, "x"),
    ("ltc/-inf", tlgeom.length_to_chord, (_states(i0000=-math.inf),), {}, "x"),
    ("steps/nan", geo.step_norms, (_states(i1111=math.nan),), {}, "x"),
    ("seq/inf", geo.sequence_turning_angles, (_states(i0200=math.inf),), {}, "x"),
    ("angles/space", tlgeom.turning_angles, (_states(),), {"space": "curved"}, "space"),
    ("angles/norm", tlgeom.turning_angles, (_states(),), {"space": "normalized", "norm": "l2"}, "norm"),
    ("angles/one-point", tlgeom.turning_angles, (torch.randn(3, 1, 4),), {}, "x"),
    ("angles/not-a-tensor", tlgeom.turning_angles, ("abc",), {}, "x"),
    ("angles/int-tensor", tlgeom.turning_angles, (torch.ones(3, 4, 2, dtype=torch.long),), {}, "x"),
    ("normalize/eps", geo.normalize_states, (_states(),), {"eps": -1.0}, "eps"),
    ("normalize/eps-nan", geo.normalize_states, (_states(),), {"eps": math.nan}, "eps"),
    ("scalar/singular", tlgeom.scalar_curvature, (_singular, PTS), {}, "metric_fn"),
    ("scalar/nan-metric", tlgeom.scalar_curvature, (_nan_metric, PTS), {}, "metric_fn"),
    ("christoffel/singular", tlgeom.christoffel_symbols, (_singular, PTS), {}, "metric_fn"),
    ("christoffel/not-callable", tlgeom.christoffel_symbols, ("g", PTS), {}, "metric_fn"),
    ("pullback/not-callable", tlgeom.pullback_metric, ("f", PTS), {}, "f"),
    ("heat_kernel/t", tlgeom.heat_kernel, (torch.eye(3, dtype=torch.float64), -1.0), {}, "t"),
    ("laplacian/k", geo_heat.graph_laplacian, (torch.randn(6, 3, dtype=torch.float64),), {"k": 0}, "k"),
    ("geodesic/n_steps", geo_riemann.geodesic, (_singular, PTS[0], PTS[0]), {"n_steps": 0}, "n_steps"),
    # experiments
    ("landscape/list", tlgeom.curvature_landscape, (M, ["the cat", "a dog"]), {}, "inputs"),
    ("landscape/empty", tlgeom.curvature_landscape, (M, ""), {}, "inputs"),
    ("landscape/batch", tlgeom.curvature_landscape, (M, torch.tensor([[5, 6], [7, 8]])), {}, "inputs"),
    ("landscape/space", tlgeom.curvature_landscape, (M, "the cat"), {"space": "curved"}, "space"),
    ("landscape/points", tlgeom.curvature_landscape, (M, "the cat"), {"points": "mid"}, "points"),
    ("landscape/norm", tlgeom.curvature_landscape, (M, "the cat"), {"space": "normalized", "norm": "l1"}, "norm"),
    ("sphere/int", tlgeom.sphere_report, (M, 3), {}, "inputs"),
    ("sphere/empty", tlgeom.sphere_report, (M, ""), {}, "inputs"),
    ("heat/layers", tlgeom.attention_vs_heat_kernel, (M, TEXT, 5), {}, "layers"),
    ("heat/layers-dup", tlgeom.attention_vs_heat_kernel, (M, TEXT, [0, 0]), {}, "layers"),
    ("heat/heads", tlgeom.attention_vs_heat_kernel, (M, TEXT, 0), {"heads": [7]}, "heads"),
    ("heat/short", tlgeom.attention_vs_heat_kernel, (M, "the cat", 0), {}, "inputs"),
    ("heat/n_t", tlgeom.attention_vs_heat_kernel, (M, TEXT, 0), {"n_t": 1}, "n_t"),
    ("laplacian/point", heat.residual_laplacian, (M, TEXT, 99), {}, "point"),
    ("laplacian/inputs", heat.residual_laplacian, (M, "", 1), {}, "inputs"),
    ("structure/seed-negative", structure.curvature_vs_structure, (M, TEXT), {"seed": -1}, "seed"),
    ("structure/seed-too-big", structure.curvature_vs_structure, (M, TEXT), {"seed": 2**63}, "seed"),
    ("structure/batch", structure.curvature_vs_structure, (M, ["the cat", "a dog"]), {}, "inputs"),
    ("structure/n_perm", structure.curvature_vs_structure, (M, TEXT), {"n_perm": 5}, "n_perm"),
    ("structure/chart_points", structure.curvature_vs_structure, (M, TEXT), {"chart_points": (2, 1)}, "chart_points"),
    ("perm/seed", structure.permutation_spearman, (torch.ones(5), torch.arange(5)), {"seed": -2}, "seed"),
    ("project/list", tlgeom.project_trajectory, (M, ["the dog"]), {}, "inputs"),
    ("project/method", tlgeom.project_trajectory, (M, "the dog"), {"method": "tsne"}, "method"),
    ("project/seed", tlgeom.project_trajectory, (M, "the dog"), {"seed": -3}, "seed"),
    ("project/reference", tlgeom.project_trajectory, (M, "the dog"), {"reference": "vocab"}, "reference"),
    ("project/projection", tlgeom.project_trajectory, (M, "the dog"), {"projection": "pca"}, "projection"),
    ("fit/seed", projection.fit_projection, (torch.randn(10, 4),), {"seed": 2**64}, "seed"),
    ("svd/circuit", tlgeom.singular_directions, (M, "XY"), {}, "circuit"),
    ("svd/layers", tlgeom.singular_directions, (M, "QK"), {"layers": 2}, "layers"),
    ("svd/heads", tlgeom.singular_directions, (M, "QK"), {"heads": [4]}, "heads"),
    ("nouns/layers", tlgeom.noun_probe, (M,), {"layers": [9]}, "layers"),
    ("chart/l1", riemann.model_chart, (M, TEXT, 0, 2, 1), {}, "l1"),
    ("chart/pos", riemann.model_chart, (M, TEXT, 99, 0, 1), {}, "pos"),
    ("chart/basis", riemann.model_chart, (M, TEXT, 0, 0, 1), {"basis": "random"}, "basis"),
    ("chart/k", riemann.model_chart, (M, TEXT, 0, 0, 1), {"k": 0}, "k"),
    ("signature/layers", riemann.head_metric_signature, (M,), {"layers": [7]}, "layers"),
    ("patch/layers", tlgeom.patch_attribution, (M, CLEAN, EDITED, TARGET), {"layers": [5]}, "layers"),
    ("patch/component", tlgeom.patch_attribution, (M, CLEAN, EDITED, TARGET), {"component": "x"}, "component"),
    ("patch/metric", tlgeom.patch_attribution, (M, CLEAN, EDITED, TARGET), {"metric": "y"}, "metric"),
    ("patch/progress", tlgeom.patch_attribution, (M, CLEAN, EDITED, TARGET), {"progress": "no"}, "progress"),
    ("patch/target", tlgeom.patch_attribution, (M, CLEAN, EDITED, "zebra"), {}, "target"),
    # the other analyses' top-level names
    ("curvature_test/seed", tlgeom.curvature_test, (M, TEXT), {"seed": -1}, "seed"),
    ("curvature_test/space", tlgeom.curvature_test, (M, TEXT), {"space": "x"}, "space"),
    ("curvature_test/inputs", tlgeom.curvature_test, (M, ""), {}, "inputs"),
    ("nulls/seed", tlgeom.compare_to_nulls, (_states(),), {"seed": -1}, "seed"),
    ("nulls/states", tlgeom.compare_to_nulls, (_states(i0111=math.inf),), {}, "states"),
    ("deflection/seed", tlgeom.deflection, (M, CLEAN, EDITED, TARGET), {"seed": -1}, "seed"),
    ("deflection/points", tlgeom.deflection, (M, CLEAN, EDITED, TARGET), {"points": "x"}, "points"),
]


def _names_argument(message: str, arg: str) -> bool:
    return re.search(rf"(^|[^\w.]){re.escape(arg)}(=|:|\b)", message) is not None


@pytest.fixture(scope="module")
def model_and_logits(tiny_gpt2):
    probe = tiny_gpt2.to_tokens("the cat sat on the mat")
    with torch.no_grad():
        logits = tiny_gpt2(probe).detach().clone()
    return tiny_gpt2, probe, logits


@pytest.mark.unchecked  # mistyped input on purpose: tlgeom's own TlgeomError is the subject
@pytest.mark.parametrize("fn, args, kwargs, arg", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_names_the_argument(model_and_logits, fn, args, kwargs, arg):
    model, probe, logits = model_and_logits
    hooks = _compat.count_hooks(model)
    args = tuple(model if a is M else a for a in args)
    with pytest.raises(tlgeom.TlgeomError) as err:
        fn(*args, **kwargs)
    assert _names_argument(str(err.value), arg), f"{arg!r} not named in: {err.value}"
    assert _compat.count_hooks(model) == hooks, "a hook was left on the model"
    with torch.no_grad():
        after = model(probe)
    assert torch.equal(after, logits), "the model changed"


def test_table_covers_the_top_level_api():
    """Every function in tlgeom.__all__ has at least one row (classes and errors excepted)."""
    called = {getattr(r[1], "__name__", None) for r in ROWS}
    public = {
        n for n in tlgeom.__all__ if callable(getattr(tlgeom, n)) and not isinstance(getattr(tlgeom, n), type)
    } - {"ContextEdit"}
    missing = sorted(n for n in public if n not in called and n != "meaning_vs_control")
    assert not missing, f"no bad-input row for {missing}"


def test_renamed_keywords_still_work_with_a_warning(tiny_gpt2):
    with pytest.warns(DeprecationWarning, match=r"curvature_landscape\(text=...\) is deprecated, use inputs="):
        old = tlgeom.curvature_landscape(tiny_gpt2, text="the cat sat")
    torch.testing.assert_close(old.angles, tlgeom.curvature_landscape(tiny_gpt2, "the cat sat").angles)
    with pytest.warns(DeprecationWarning, match="use layers="):
        sd = tlgeom.singular_directions(tiny_gpt2, "QK", layer=1, k=2, n_nearest=2)
    torch.testing.assert_close(sd.S, tlgeom.singular_directions(tiny_gpt2, "QK", layers=1, k=2, n_nearest=2).S)
    with pytest.warns(DeprecationWarning, match="use inputs="):
        tlgeom.sphere_report(tiny_gpt2, texts="the cat sat")
    with pytest.raises(tlgeom.TlgeomError, match="pass inputs= only"):
        tlgeom.curvature_landscape(tiny_gpt2, text="the cat", inputs="the dog")
