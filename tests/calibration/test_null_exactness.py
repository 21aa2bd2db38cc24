"""The fast null samplers at the dimension of a real model (d = 576, SmolLM2-135M): their
statistics over 2000 simulations against the plain definition (the Q of a d × d Gaussian matrix with
the sign fix, per simulation and layer step), two-sample KS per statistic. The unit tier runs the
same comparison at small d (tests/unit/test_nulls.py); this one costs ~6000 QRs of 576 × 576."""

from __future__ import annotations

import pytest
import torch
from null_reference import per_text_statistics, plain_rotation_reference
from scipy import stats

from tlgeom._args import generator
from tlgeom.stats.nulls import get_null

pytestmark = pytest.mark.calibration


def test_reduced_rotation_at_d576_matches_plain_qr():
    g = torch.Generator().manual_seed(7)
    N, P, d, S = 8, 4, 576, 2000
    x = torch.randn(N, P, d, generator=g, dtype=torch.float64).cumsum(1) * torch.rand(N, 1, 1, generator=g)
    fast = get_null("rotation").simulate(x, S, generator(0), method="reduced")
    parts = [plain_rotation_reference(x, 100, generator(1 + i)) for i in range(S // 100)]
    ref_a, ref_l = torch.cat([a for a, _ in parts]), torch.cat([l for _, l in parts])
    q = torch.rad2deg(ref_a).flatten().quantile(torch.tensor([0.1, 0.9], dtype=torch.float64))
    a = per_text_statistics(fast.angles, fast.ltc, float(q[0]), float(q[1]))
    b = per_text_statistics(ref_a, ref_l, float(q[0]), float(q[1]))
    for k in a:
        p = stats.ks_2samp(a[k].numpy(), b[k].numpy()).pvalue
        print(k, p)
        assert p > 1e-3, k
