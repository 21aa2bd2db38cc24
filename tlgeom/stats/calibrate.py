"""Simulated corpora for calibrating the curvature tests (pure tensors, seeded; no model).

Each corpus is a list of texts ``[pos, point, d]`` whose tokens are **dependent**, as real tokens
of one text are: every layer step of token n in a text is a shared per-text step plus private
noise,

    ``z_{l,n} = shared · s_l + private · e_{l,n}``,  ``s_l, e_{l,n} ~ N(0, I_d)`` i.i.d.

* :func:`dependent_walks` (raw space): ``Δ_{l,n} = z_{l,n} − anti · z_{l−1,n}``. With ``anti = 0``
  each layer's step matrix is rotation-invariant and the layers are i.i.d.: the ``rotation`` and
  ``shuffle`` nulls are *exactly* true (and every token, taken alone, is an isotropic walk, so
  the per-token ``gaussian_token`` / ``shuffle_token`` nulls hold for each token marginally; only
  the independence between tokens that they assume is false). ``anti > 0`` plants
  anti-correlated consecutive steps: ``cos θ ≈ −anti / (1 + anti²)``, a turn a few degrees
  sharper than 90° (``anti = 0.15``: ≈ 98.5°).
* :func:`dependent_sphere_walks` (normalized space): walks on the sphere of radius √d, each step
  the exp map of ``(z_{l,n} − anti · z_{l−1,n})`` projected on the tangent space and scaled to a
  random geodesic length. With ``anti = 0`` these are random walks on the sphere with dependent
  tokens (the null the normalized-space nulls stand for).

``python -m benchmarks.calibration`` (``benchmarks/calibration.py``) runs the procedures over
many such corpora and writes ``results/calibration.csv``; ``tests/calibration`` asserts on them.
"""

from __future__ import annotations

import math

import torch

from tlgeom._args import check_int
from tlgeom._errors import bad_arg
from tlgeom.stats.nulls import sphere_exp, tangent


def _sizes(n_texts: int, n_tokens: int, n_points: int, d: int) -> None:
    check_int("n_texts", n_texts, 1)
    check_int("n_tokens", n_tokens, 1)
    check_int("n_points", n_points, 3)
    check_int("d", d, 2)


def _steps(
    n_texts: int, n_tokens: int, K: int, d: int, shared: float, private: float, anti: float, gen: torch.Generator
) -> torch.Tensor:
    """``[text, pos, K, d]`` steps ``z_l − anti·z_{l−1}`` with ``z = shared·s_l + private·e_{l,n}``."""
    s = torch.randn(n_texts, 1, K + 1, d, generator=gen, dtype=torch.float64)
    e = torch.randn(n_texts, n_tokens, K + 1, d, generator=gen, dtype=torch.float64)
    z = shared * s + private * e
    return z[:, :, 1:] - anti * z[:, :, :-1]


def dependent_walks(
    n_texts: int,
    n_tokens: int,
    n_points: int,
    d: int,
    generator: torch.Generator,
    *,
    shared: float = 1.0,
    private: float = 0.5,
    anti: float = 0.0,
) -> list[torch.Tensor]:
    """A raw-space corpus: ``n_texts`` tensors ``[n_tokens, n_points, d]`` (see the module docstring)."""
    _sizes(n_texts, n_tokens, n_points, d)
    if not 0 <= anti < 1:
        raise bad_arg("anti", anti, "a float in [0, 1)")
    steps = _steps(n_texts, n_tokens, n_points - 1, d, shared, private, anti, generator)
    x0 = shared * torch.randn(n_texts, 1, 1, d, generator=generator, dtype=torch.float64)
    x0 = x0 + private * torch.randn(n_texts, n_tokens, 1, d, generator=generator, dtype=torch.float64)
    x = torch.cat([x0, x0 + steps.cumsum(2)], 2)
    return list(x)


def dependent_sphere_walks(
    n_texts: int,
    n_tokens: int,
    n_points: int,
    d: int,
    generator: torch.Generator,
    *,
    shared: float = 1.0,
    private: float = 0.5,
    anti: float = 0.0,
    step: float = 0.3,
) -> list[torch.Tensor]:
    """A normalized-space corpus on the sphere of radius √d: geodesic step lengths ``step·√d·U``,
    ``U ~ Uniform(0.5, 1.5)``, directions from the tangent projection of the dependent steps."""
    _sizes(n_texts, n_tokens, n_points, d)
    if not 0 <= anti < 1:
        raise bad_arg("anti", anti, "a float in [0, 1)")
    K = n_points - 1
    rho = math.sqrt(d)
    steps = _steps(n_texts, n_tokens, K, d, shared, private, anti, generator)
    y = shared * torch.randn(n_texts, 1, d, generator=generator, dtype=torch.float64)
    y = y + private * torch.randn(n_texts, n_tokens, d, generator=generator, dtype=torch.float64)
    y = y * (rho / torch.linalg.vector_norm(y, dim=-1, keepdim=True))
    lengths = step * rho * (0.5 + torch.rand(n_texts, n_tokens, K, generator=generator, dtype=torch.float64))
    out = [y]
    for l in range(K):
        t = tangent(y, steps[:, :, l])
        t = t * (lengths[..., l, None] / torch.linalg.vector_norm(t, dim=-1, keepdim=True))
        y = sphere_exp(y, t)
        out.append(y)
    return list(torch.stack(out, 2))
