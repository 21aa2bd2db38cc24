"""Builds tutorials/01_curvature.ipynb (committed without outputs; CI executes it)."""

import nbformat as nbf
from _nb import colab_cell, write

cells = [
    nbf.v4.new_markdown_cell(
        "# Curvature of token trajectories, and whether it is more than chance\n\n"
        "Each token's residual stream traces a path through the layers. We measure how sharply it turns "
        "(turning angle between consecutive layer steps: 0° = straight on, 180° = reversal) and how roundabout "
        "it is (length-to-chord, LTC ≥ 1), then compare with null models. Thresholds and nulls are tlgeom's "
        "documented choices, not those of the paper that motivated them (arXiv 2511.03060)."
    ),
    colab_cell(),
    nbf.v4.new_code_cell(
        "import matplotlib\n"
        "matplotlib.use('Agg')\n"
        "import torch, tlgeom\n"
        "from tlgeom.curvature import curvature_landscape, sequence_curvature\n"
        "from tlgeom.nulls import curvature_test\n"
        "from tlgeom.data import PARAGRAPH\n\n"
        "model = tlgeom.load_model('smollm2-135m')   # SmolLM2-135M-Instruct, 30 layers, d_model 576\n"
        "land = curvature_landscape(model, PARAGRAPH)   # one streamed forward pass\n"
        "print(land.angles.shape, 'turning angles [token, layer vertex]')\n"
        "land.plot();"
    ),
    nbf.v4.new_markdown_cell(
        "Random directions in R^576 would turn by 90° ± 2.4°. The tidy frame makes per-layer summaries easy "
        "(the first token, BOS, is an outlier on SmolLM2: its residual norm is ~100× the others'):"
    ),
    nbf.v4.new_code_cell(
        "df = land.to_frame()\n"
        "df[df.pos > 0].groupby('label', sort=False).turning_angle_deg.agg(['median', 'std']).T.round(1)"
    ),
    nbf.v4.new_markdown_cell(
        "## Is it more than chance?\n\n"
        "`curvature_test` counts sharp (θ ≥ 110°) and flat (θ ≤ 70°) turns and compares them, and the median "
        "LTC, with null models: a norm-matched Gaussian walk in R^576, each token's steps shuffled across layers, "
        "random turn planes with the same angles, a Gaussian walk in the cloud's participation-ratio dimension, "
        "and the same architecture re-initialised. p-values are one-sided permutation p-values with the +1 "
        "correction (999 simulations: the smallest is 0.001)."
    ),
    nbf.v4.new_code_cell(
        "report = curvature_test(model, [PARAGRAPH], n_sims=999, seed=0)\n"
        "print(report.summary())"
    ),
    nbf.v4.new_code_cell(
        "report.plot();\n"
        "report.to_frame().query(\"vertex == 'all'\")[['null', 'statistic', 'observed', 'reference', 'z', 'p']]"
    ),
    nbf.v4.new_markdown_cell(
        "The same on normalised states (what each block's RMSNorm reads), and the across-token curvature "
        "(Hosseini & Fedorenko's straightening: the angle between consecutive token steps at each layer):"
    ),
    nbf.v4.new_code_cell(
        "from tlgeom.nulls import compare_to_nulls   # works on any states tensor, no model needed\n"
        "traj = tlgeom.record_trajectories(model, PARAGRAPH)\n"
        "norm_report = compare_to_nulls(traj, nulls=('gaussian', 'rotation'), space='normalized', norm='rms', n_sims=199)\n"
        "print(norm_report.verdicts())\n"
        "print('across-token curvature per layer (deg):', sequence_curvature(traj)[0].rad2deg().round().tolist()[::5])"
    ),
]
write(cells, "01_curvature.ipynb")
