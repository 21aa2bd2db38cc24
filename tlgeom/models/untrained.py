"""Null models for layer-wise trajectory curvature, and the statistics that compare to them.

Is a model's trajectory curvature more than dimensionality or chance would give? Each null model
below generates surrogate trajectories that keep some properties of the observed ones and
randomise the rest; :func:`compare_to_nulls` counts sharp and flat turns and measures
length-to-chord (LTC) on the observed and on ``n_sims`` surrogate sets, and reports the excess,
a z-score and a permutation p-value ``p = (1 + #{null ≥ observed}) / (1 + n_sims)``.

The null models (tlgeom's choices: the paper, arXiv 2511.03060, names "dimensionality or
chance" but its null models are not available to us, so none of these is claimed to be its):

=============  =================================================================================
``gaussian``   norm-matched isotropic Gaussian walk: each token keeps its step norms ‖Δ_l‖;
               each step's direction is uniform on the sphere of R^d_model.
``shuffle``    step shuffle: each token's own steps, permuted across layers (one random
               permutation per token and simulation). Length and chord are sums over steps, so
               LTC is unchanged by construction: this null tests angles only.
``rotation``   angle-preserving rotation: keeps every step norm and every turning angle; the
               direction of each turn (the plane it happens in) is uniform. Angles are kept by
               construction: this is the null for LTC given the angles.
``dimension``  the ``gaussian`` walk in R^k, k = the participation ratio
               ``(Σλ)² / Σλ²`` of the covariance of the observed residual cloud (all valid
               states, centred), rounded, at least 2.
``untrained``  (model-based, :func:`curvature_test` only) the same architecture re-initialised
               with a seed, fed the same tokens; compared by a paired swap test: for each
               simulation, each token's trained and untrained trajectories are swapped with
               probability ½.
=============  =================================================================================

Exact and cheap: every null is a distribution over rotation-invariant quantities (norms, angles,
LTC), so surrogate walks are generated in an orthonormal basis of their own span: ``D =
min(steps, d)`` coordinates instead of ``d``. For the Gaussian walk this is the Bartlett
decomposition (the Gram matrix of K Gaussian vectors in R^d equals ``RᵀR`` with ``R`` upper
triangular, ``R_jj ~ χ(d − j)``, ``R_ij ~ N(0, 1)`` above the diagonal), so cost grows with
``sims·tokens·steps²``, not with ``d``; ``method="direct"`` draws the d-dimensional vectors
instead (same distribution, tested). All samplers are vectorised over simulations and tokens,
seeded, and run on the states' device.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from tlgeom._errors import bad_arg
from tlgeom.stats.nulls import seeded


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
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise bad_arg("seed", seed, "an int")
    m = copy.deepcopy(model)
    dev = _compat.model_device(m)
    orig = getattr(m, "original_model", None)
    with seeded(seed, dev), torch.no_grad():
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
