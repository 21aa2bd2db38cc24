"""The tlgeom 0.1 flat module paths still work for one release, each access warning where the name went.

``OLD_API`` is the frozen public surface of tlgeom 0.1.0 (every top-level public def, class and constant of the
flat modules, as released). This is the one test allowed to touch the old paths: the test configuration makes
every other DeprecationWarning an error.
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path

import pytest

from tlgeom._shim import REMOVED_IN

OLD_API = {
    "circuits": "CIRCUITS cumulative_energy rank_at_energy sign_by_reference sign_by_largest_coordinate factored_svd attn_scale qk_circuit ov_circuit decode_tokens SingularDirections singular_directions load_nouns single_token_words KeyValueProbe noun_probe",
    "curvature": "SHARP_DEG FLAT_DEG SPACES NORMS ZERO_STEP_RTOL as_states steps step_norms angle_between normalize_states model_normalization turning_angles interior_angles chord_ratio length_to_chord SharpFlat sharp_flat_counts null_sd_thresholds sequence_turning_angles sequence_curvature straightening NormalizedTurningAngles NormalizedStepNorms NormalizedLengthToChord SequenceTurningAngles Landscape curvature_landscape",
    "eclipse": "SUBTOKENS MEASURES EDIT_KINDS deflection_measures toward_sense align_tokens find_word ContextEdit ResolvedEdit token_char_spans minimal_pairs sense_contexts control_words control_edits sense_prototypes Deflection deflection DeflectionTest meaning_vs_control",
    "heat": "DEFAULT_K bandwidth GraphLaplacian graph_laplacian heat_kernel residual_laplacian row_spearman HeatAttention attention_vs_heat_kernel",
    "layernorm": "NORM_KINDS EMBEDDING_VARIANTS SPHERE_TOL normalize apply_norm expected_radius ellipsoid_geometry embedding_check NormLayer norm_layers attention_input_norm check_layer SphereReport sphere_report",
    "nulls": "THRESHOLDS random_directions gaussian_walk dimension_matched_walk participation_ratio effective_dimension step_shuffle angle_preserving_walk NullResult permutation_p CurvatureReport null_statistics compare_to_nulls untrained_model curvature_test",
    "patching": "COMPONENTS METRICS TOKEN_BUDGET MAX_BATCH STATUS_NAMES restored_fraction default_batch_size PatchAttribution patch_attribution",
    "projection": "METHODS UMAP_DEFAULTS pca Projection fit_projection TrajectoryProjection project_trajectory",
    "riemann": "MAX_CURVATURE_DIM MetricFn pullback_metric christoffel_symbols Curvature curvature riemann_tensor ricci_tensor scalar_curvature pullback_scalar_curvature Geodesic geodesic parallel_transport chart_basis LayerChart model_chart head_effective_metric HeadSignature head_metric_signature",
    "streaming": "StreamMetric StepMetric StepNorms TurningAngles LengthToChord stream",
    "structure": "CLASSES PAIRS function_words classify_tokens permutation_effect permutation_spearman StructureResult curvature_vs_structure",
    "trajectory": "Trajectories record_trajectories",
}
#: 0.1 names dropped on purpose in 0.2 (each also listed under "Removed" in CHANGELOG.md): "module.name": why.
REMOVED: dict[str, str] = {}
CASES = [
    (module, name) for module, names in OLD_API.items() for name in names.split() if f"{module}.{name}" not in REMOVED
]


def test_every_old_module_is_listed():
    """No shim module is left out of OLD_API (a new shim without a test would go unnoticed)."""
    import tlgeom

    shims = sorted(
        p.stem for p in Path(tlgeom.__file__).parent.glob("*.py") if "tlgeom._shim import moved" in p.read_text()
    )
    assert shims == sorted(OLD_API)


@pytest.mark.parametrize(("module", "name"), CASES, ids=[f"{m}.{n}" for m, n in CASES])
def test_old_path_resolves_with_a_deprecation_warning(module, name):
    old = importlib.import_module(f"tlgeom.{module}")
    with pytest.warns(DeprecationWarning) as caught:
        value = getattr(old, name)
    messages = [str(w.message) for w in caught if issubclass(w.category, DeprecationWarning)]
    assert len(messages) == 1
    found = re.fullmatch(
        rf"tlgeom\.{module}\.{name} has moved to (tlgeom(?:\.\w+)+)\.{name}; "
        rf"the old path is removed in tlgeom {re.escape(REMOVED_IN)}",
        messages[0],
    )
    assert found, messages[0]
    new_path = found.group(1)
    assert new_path != f"tlgeom.{module}"  # it names where the name went, not where it was
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new path itself never warns
        new = importlib.import_module(new_path)
    assert getattr(new, name) is value


def test_removed_names_are_gone_and_in_the_changelog():
    changelog = (Path(__file__).parents[2] / "CHANGELOG.md").read_text(encoding="utf-8")
    for dotted in REMOVED:
        module, name = dotted.split(".")
        assert name in OLD_API[module].split()
        with pytest.raises(AttributeError):
            getattr(importlib.import_module(f"tlgeom.{module}"), name)
        assert f"`tlgeom.{dotted}`" in changelog


def test_unknown_old_name_is_an_attribute_error_naming_the_new_modules():
    import tlgeom.curvature as old

    with pytest.raises(AttributeError, match=r"tlgeom\.geometry\.curvature"):
        old.no_such_function  # noqa: B018


def test_old_paths_warn_even_under_the_error_filter():
    """The test configuration turns DeprecationWarning into an error: an old path fails a test that uses it."""
    import tlgeom.curvature as old

    with pytest.raises(DeprecationWarning, match="tlgeom.geometry.curvature.turning_angles"):
        old.turning_angles  # noqa: B018
