"""Model access: everything that touches a TransformerLens model.

``load_model`` and the tiny offline models (:mod:`tlgeom.models.load`), the TransformerLens 3 / 4
compatibility layer (:mod:`~tlgeom.models._compat`), model conventions (normalisation, norm
layers: :mod:`~tlgeom.models.conventions`), trajectory recording
(:mod:`~tlgeom.models.trajectory`), streaming metrics (:mod:`~tlgeom.models.streaming`) and the
untrained-model builder (:mod:`~tlgeom.models.untrained`).
"""

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
    "KNOWN_MODELS",
    "TINY_WORDS",
    "cache_dir",
    "check_device",
    "hub_available",
    "load_model",
    "pick_model",
    "tiny_model",
    "tiny_tokenizer",
]
