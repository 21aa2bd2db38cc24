"""The untrained-model null: the same architecture with every weight re-initialised, seeded.

Hugging Face's ``init_weights`` and TransformerLens' initialisers draw from torch's *global* RNG
and accept no generator, so :func:`untrained_model` seeds it inside ``torch.random.fork_rng``:
the caller's RNG state (CPU and the model's CUDA device) is restored afterwards. This is the only
place tlgeom touches the global RNG.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import torch

from tlgeom._args import check_seed
from tlgeom._errors import bad_arg


@contextlib.contextmanager
def _global_rng_seeded(seed: int, device: torch.device | str):
    """torch's global RNG seeded with ``seed`` for the block, the caller's state restored after."""
    device = torch.device(device)
    devices = (
        [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    )
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def untrained_model(model: Any, seed: int = 0) -> Any:
    """A deep copy of ``model`` with every weight re-initialised, seeded (the model is untouched).

    What is re-initialised, by model kind:

    * TransformerBridge wrapping a Hugging Face model (``model.original_model`` is a
      ``PreTrainedModel``): the copy's ``_is_hf_initialized`` flags (set on loading, they make HF
      skip initialisation) are cleared and ``original_model.init_weights()`` runs under
      ``torch.manual_seed(seed)``: the architecture's own ``_init_weights`` (for Llama/SmolLM2:
      Linear and Embedding ~ N(0, initializer_range), RMSNorm weights 1) and its weight tying.
    * TransformerBridge booted natively (``boot_native``): TransformerLens'
      ``initialize_native_model(original_model, cfg, seed=seed)`` (honours ``cfg.init_mode``).
    * HookedTransformer: ``init_weights()`` with ``cfg.seed = seed`` (TransformerLens' scheme for
      ``cfg.init_mode``; LayerNorm weights stay 1 and biases 0).
    * Anything else (e.g. HookedEncoder): matrices ~ N(0, cfg.initializer_range or 0.02),
      LayerNorm weights (``*.w``) 1, other vectors 0.

    The RNG state of the caller is restored afterwards.
    """
    from tlgeom.models import _compat

    info = _compat.check_model(model)
    if seed is None:
        raise bad_arg("seed", seed, "an int in [0, 2**63)")
    check_seed(seed)
    m = copy.deepcopy(model)
    dev = _compat.model_device(m)
    orig = getattr(m, "original_model", None)
    with _global_rng_seeded(seed, dev), torch.no_grad():
        if (
            info.api == "bridge"
            and orig is not None
            and hasattr(orig, "_init_weights")
            and hasattr(orig, "init_weights")
        ):
            for mod in orig.modules():
                if getattr(mod, "_is_hf_initialized", False):
                    mod._is_hf_initialized = False
                for t in list(mod.parameters(recurse=False)) + list(mod.buffers(recurse=False)):
                    if getattr(t, "_is_hf_initialized", False):
                        t._is_hf_initialized = False
            orig.init_weights()
        elif info.api == "bridge" and orig is not None and type(orig).__name__ == "NativeModel":
            from transformer_lens.model_bridge.sources.native.init import (
                initialize_native_model,
            )

            initialize_native_model(orig, m.cfg, seed=seed)
        elif info.api == "hooked_transformer" and hasattr(m, "init_weights"):
            m.cfg.seed = seed
            m.init_weights()
        else:
            std = float(getattr(m.cfg, "initializer_range", 0.0) or 0.02)
            for pname, p in m.named_parameters():
                if p.dim() >= 2:
                    p.normal_(0.0, std)
                elif pname.endswith(".w") or pname.endswith("weight"):
                    p.fill_(1.0)
                else:
                    p.zero_()
    return m.eval()
