"""tlgeom: the geometry of what a transformer does to its tokens, on TransformerLens models.

Quick start::

    import tlgeom
    model = tlgeom.load_model("smollm2-135m")          # offline; or any TransformerBridge name
    traj = tlgeom.record_trajectories(model, "The cat sat on the mat.")
    tlgeom.turning_angles(traj)                         # [batch, pos, point-2] radians

The top level holds the main entry points, imported on first use (``import tlgeom`` does not
import torch). The layers below it, each importing only from those under it: ``tlgeom.geometry``
(pure tensor maths) and ``tlgeom.stats`` (null models, p-values) → ``tlgeom.models`` (loading,
trajectories, streaming) → ``tlgeom.experiments`` (the analyses, each returning a Result) →
``tlgeom.report`` and the command line (``tlgeom.cli``).
"""

from typing import TYPE_CHECKING, Any

from ._errors import PrecisionWarning, TlgeomError

#: Public name → the module that defines it. Imported on first use (PEP 562), so that
#: ``import tlgeom`` and ``tlgeom --help`` do not import torch.
_LAZY = {
    "noun_probe": "experiments.circuits",
    "singular_directions": "experiments.circuits",
    "compare_to_nulls": "experiments.curvature",
    "curvature_test": "experiments.curvature",
    "ContextEdit": "experiments.eclipse",
    "deflection": "experiments.eclipse",
    "meaning_vs_control": "experiments.eclipse",
    "attention_vs_heat_kernel": "experiments.heat",
    "curvature_landscape": "experiments.landscape",
    "patch_attribution": "experiments.patching",
    "project_trajectory": "experiments.projection",
    "sphere_report": "experiments.sphere",
    "length_to_chord": "geometry.curvature",
    "turning_angles": "geometry.curvature",
    "heat_kernel": "geometry.heat",
    "christoffel_symbols": "geometry.riemann",
    "pullback_metric": "geometry.riemann",
    "scalar_curvature": "geometry.riemann",
    "load_model": "models",
    "LengthToChord": "models.streaming",
    "StepNorms": "models.streaming",
    "StreamMetric": "models.streaming",
    "TurningAngles": "models.streaming",
    "stream": "models.streaming",
    "Trajectories": "models.trajectory",
    "record_trajectories": "models.trajectory",
}

if TYPE_CHECKING:  # pragma: no cover - what static tools see
    from .experiments.circuits import noun_probe, singular_directions
    from .experiments.curvature import compare_to_nulls, curvature_test
    from .experiments.eclipse import ContextEdit, deflection, meaning_vs_control
    from .experiments.heat import attention_vs_heat_kernel
    from .experiments.landscape import curvature_landscape
    from .experiments.patching import patch_attribution
    from .experiments.projection import project_trajectory
    from .experiments.sphere import sphere_report
    from .geometry.curvature import length_to_chord, turning_angles
    from .geometry.heat import heat_kernel
    from .geometry.riemann import christoffel_symbols, pullback_metric, scalar_curvature
    from .models import load_model
    from .models.streaming import LengthToChord, StepNorms, StreamMetric, TurningAngles, stream
    from .models.trajectory import Trajectories, record_trajectories


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


from ._version import __version__  # noqa: E402, F401 - the one version source (pyproject reads tlgeom._version)

__all__ = [
    # errors and models
    "TlgeomError",
    "PrecisionWarning",
    "load_model",
    # trajectories and streaming
    "record_trajectories",
    "Trajectories",
    "stream",
    "StreamMetric",
    "TurningAngles",
    "StepNorms",
    "LengthToChord",
    # curvature (2511.03060 (i), (ii))
    "turning_angles",
    "length_to_chord",
    "curvature_landscape",
    "compare_to_nulls",
    "curvature_test",
    # eclipse experiment (2511.03060 (iii))
    "ContextEdit",
    "deflection",
    "meaning_vs_control",
    "patch_attribution",
    # Traveling Words (2309.07315)
    "sphere_report",
    "singular_directions",
    "noun_probe",
    "project_trajectory",
    # Riemannian geometry and heat kernels (Hamam)
    "pullback_metric",
    "christoffel_symbols",
    "scalar_curvature",
    "heat_kernel",
    "attention_vs_heat_kernel",
]
