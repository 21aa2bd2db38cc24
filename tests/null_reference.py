"""Plain reference samplers for the exactness tests of tlgeom's fast null samplers (unit and
calibration tiers): the definition of each null, drawn the obvious way, with no shortcut."""

from __future__ import annotations

import torch

from tlgeom.geometry.curvature import length_to_chord, turning_angles


def plain_rotation_reference(x: torch.Tensor, n_sims: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``rotation`` null drawn the plain way: per simulation and layer step the Q of a ``d × d``
    Gaussian matrix (signs of ``diag R`` folded in: Haar), applied to that step of every token."""
    steps = x[:, 1:] - x[:, :-1]  # [N, K, d]
    d, K = x.shape[-1], steps.shape[1]
    g = torch.randn(n_sims, K, d, d, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(g)
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    y = torch.einsum("nkd,skde->snke", steps, q)
    walk = torch.cat([torch.zeros(n_sims, x.shape[0], 1, d, dtype=torch.float64), y.cumsum(2)], 2)
    return turning_angles(walk), length_to_chord(walk)


def per_text_statistics(angles: torch.Tensor, ltc: torch.Tensor, lo: float, hi: float) -> dict[str, torch.Tensor]:
    deg = torch.rad2deg(angles)
    return {
        "mean_angle": deg.mean((-1, -2)),
        "mean_abs_dev": (deg - 90).abs().mean((-1, -2)),
        "sharp_flat": ((deg <= lo) | (deg >= hi)).double().mean((-1, -2)),
        "log_ltc": ltc.log().mean(-1),
        "first_angle": deg[..., 0, 0],
        "first_ltc": ltc[..., 0],
    }
