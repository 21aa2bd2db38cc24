"""tlgeom: the geometry of what a transformer does to its tokens, on TransformerLens models.

Quick start::

    import tlgeom
    model = tlgeom.load_model("smollm2-135m")          # offline; or any TransformerBridge name
    traj = tlgeom.record_trajectories(model, "The cat sat on the mat.")
    tlgeom.turning_angles(traj)                         # [batch, pos, layer-1] radians
"""

from ._errors import TlgeomError
from .curvature import (  # curvature before streaming: it subclasses the streaming metrics
    Landscape,
    curvature_landscape,
    interior_angles,
    length_to_chord,
    sharp_flat_counts,
    step_norms,
    turning_angles,
)
from .models import load_model
from .streaming import LengthToChord, StepMetric, StepNorms, StreamMetric, TurningAngles, stream
from .trajectory import Trajectories, record_trajectories
from .nulls import CurvatureReport, compare_to_nulls, curvature_test

__version__ = "0.1.0"

__all__ = [
    "TlgeomError",
    "load_model",
    "record_trajectories",
    "Trajectories",
    "stream",
    "StreamMetric",
    "StepMetric",
    "StepNorms",
    "TurningAngles",
    "LengthToChord",
    "turning_angles",
    "interior_angles",
    "length_to_chord",
    "step_norms",
    "sharp_flat_counts",
    "curvature_landscape",
    "Landscape",
    "compare_to_nulls",
    "curvature_test",
    "CurvatureReport",
]
