"""Model access: everything that touches a TransformerLens model.

``load_model`` and the tiny offline models (:mod:`tlgeom.models.load`), the TransformerLens 3 / 4
compatibility layer (:mod:`~tlgeom.models._compat`), architectural conventions read from the model
(norm kind and (1+w) gain, placement, true attention scale, positions, attention variant:
:mod:`~tlgeom.models.arch`), norm layers (:mod:`~tlgeom.models.conventions`), trajectory recording
(:mod:`~tlgeom.models.trajectory`), streaming metrics (:mod:`~tlgeom.models.streaming`) and the
untrained-model builder (:mod:`~tlgeom.models.untrained`).
"""

from tlgeom.models.arch import Architecture, architecture
from tlgeom.models.load import (
    KNOWN_MODELS,
    TINY_WORDS,
    cache_dir,
    check_device,
    hub_available,
    load_model,
    pick_model,
    tiny_model,
    tiny_tokenizer,
)

__all__ = [
    "Architecture",
    "KNOWN_MODELS",
    "TINY_WORDS",
    "architecture",
    "cache_dir",
    "check_device",
    "hub_available",
    "load_model",
    "pick_model",
    "tiny_model",
    "tiny_tokenizer",
]
