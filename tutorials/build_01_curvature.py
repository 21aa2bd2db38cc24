"""Builds tutorials/01_curvature.ipynb (committed without outputs; CI executes it)."""

import nbformat as nbf
from _nb import colab_cell, header, params_cell, write

NAME = "01_curvature.ipynb"
c = nbf.v4.new_code_cell
md = nbf.v4.new_markdown_cell
cells = [
    header(
        NAME,
        "# 01 · The curvature landscape of token trajectories, and null models\n\n"
        "Each token's residual stream traces a path through the layers. We measure how sharply it turns "
        "(the turning angle between consecutive layer steps: 0° = straight on, 180° = reversal) and how "
        "roundabout it is (length-to-chord, LTC ≥ 1), map this for every token and layer (the *curvature "
        "landscape*), and ask whether it is more than chance by comparing with null models.\n\n"
        "The question comes from the curved-spacetime paper (arXiv 2511.03060). Its full text was not "
        "available to us: the thresholds (sharp θ ≥ 110°, flat θ ≤ 70°) and the null models below are "
        "tlgeom's documented choices, not the paper's.",
    ),
    colab_cell(),
    params_cell(N_SIMS=(999, 199, "simulations per null model (the smallest p-value is 1/(N_SIMS+1))")),
    c(
        "import torch, tlgeom\n"
        "from tlgeom.experiments.landscape import curvature_landscape\nfrom tlgeom.geometry.curvature import sequence_curvature\n"
        "from tlgeom.experiments.curvature import curvature_test\n"
        "from tlgeom.data import PARAGRAPH   # a bundled English paragraph (~160 tokens)\n\n"
        "model = tlgeom.load_model(MODEL)\n"
        "L, d = model.cfg.n_layers, model.cfg.d_model\n"
        "print(f'{MODEL}: {L} layers, d_model {d}, normalisation {model.cfg.normalization_type}')\n"
        "land = curvature_landscape(model, PARAGRAPH)   # one streamed forward pass\n"
        "print(tuple(land.angles.shape), 'turning angles [token, layer vertex]')\n"
        "land.plot();"
    ),
    md(
        "**The landscape.** One row per token of the paragraph, one column per layer vertex (the turn at the "
        "output of block *l*, between the step into that point and the step out of it); the colour is the "
        "turning angle in degrees. Dark = the trajectory carries straight on, bright = it doubles back. "
        "Columns that are uniformly dark or bright are layers where every token turns alike; isolated bright "
        "cells are single tokens turning sharply.\n\n"
        "Two random directions in R^d are almost orthogonal: 90° ± (1/√d) rad. The first token (BOS) is "
        "often an outlier (an attention sink with a huge residual norm), so the per-layer summary leaves it out:"
    ),
    c(
        "print(f'random directions in R^{d}: 90 ± {torch.tensor(float(d)).rsqrt().rad2deg():.1f} degrees')\n"
        "traj = tlgeom.record_trajectories(model, PARAGRAPH)\n"
        "norms = traj.norms()[0]                                 # [pos, point]\n"
        "ratio = float(norms[0].median() / norms[1:].median())\n"
        "print(f'first token {traj.str_tokens[0][0]!r}: median residual norm {ratio:.1f}x that of the other tokens')\n"
        "df = land.to_frame()\n"
        "df[df.pos > 0].groupby('label', sort=False).turning_angle_deg.agg(['median', 'std']).T.round(1)"
    ),
    md(
        "## Is it more than chance?\n\n"
        "Tokens of one text share their context, so they are not independent samples: the **text** is the "
        "unit of inference. Here each sentence of the paragraph is one text (a real claim needs tens of "
        "texts: `make claims` runs 50 news articles). `curvature_test` computes each statistic per text, "
        "simulates each null jointly for all tokens of that text, and combines the evidence across texts:\n\n"
        "* **rotation**: a random rotation per layer step applied to every token's step (directions become "
        "random across layers; the geometry among the tokens within a layer is kept);\n"
        "* **shuffle**: one random layer order per text, the same for all its tokens (cannot change LTC);\n"
        "* **untrained**: the same architecture re-initialised, run on the same texts (paired per text).\n\n"
        "Statistics: `sharp_flat` (turns beyond each null's own 2.5 % tails), `mean_angle`, `mean_abs_dev` "
        "(mean |θ − 90°|) and `log_ltc`. Every row of `tests()` has the effect, a 95 % bootstrap CI over "
        "texts, the Monte-Carlo p and the Holm-adjusted p across the whole table; `reject` is decided on the "
        "adjusted p. `skip_first=1` leaves out the first token (BOS), whose outsized norm dominates."
    ),
    c(
        "texts = [s.strip() + '.' for s in PARAGRAPH.replace('\\n', ' ').split('. ') if len(s.split()) > 3]\n"
        "report = curvature_test(model, texts, n_sims=N_SIMS, seed=0, skip_first=1)\n"
        "print(report.summary())"
    ),
    md(
        "**The table and the figure.** One row per (null, statistic): observed mean over texts, the nulls' "
        "mean, the effect with its CI over texts, raw and adjusted p. The figure shows the per-text effects "
        "against each null."
    ),
    c(
        "report.plot();\n"
        "report.tests()[['null', 'statistic', 'observed', 'null_mean', 'effect', 'ci_low', 'ci_high', 'p', "
        "'p_adjusted', 'reject']].round(3)"
    ),
    md(
        "## Normalised states and across-token curvature\n\n"
        "The same test on *normalised* states (what each block's LayerNorm/RMSNorm reads; "
        "`space='normalized'`): the states lie on the sphere of radius √d, so the nulls live there too "
        "(`sphere_rotation`: the joint rotation in the sphere's tangent spaces). Then the across-token "
        "curvature of Hosseini & Fedorenko's straightening: at each layer, the angle between consecutive "
        "*token* steps of the sentence (lower = straighter sequence)."
    ),
    c(
        "norm_report = curvature_test(model, texts, space='normalized', n_sims=N_SIMS, seed=0, skip_first=1)\n"
        "print(norm_report.tests()[['null', 'statistic', 'effect', 'p_adjusted', 'reject']].round(3))\n"
        "seq = sequence_curvature(traj)[0].rad2deg()               # [point] mean angle between token steps\n"
        "every = max(1, L // 6)\n"
        "print('across-token curvature (deg) at', traj.point_labels[::every], ':', seq[::every].round().tolist())"
    ),
    md(
        "## What would count as evidence against the paper\n\n"
        "The claim under test is that trajectories bend in a structured way, more than chance would make them. "
        "Evidence against it, in the output above:\n\n"
        "* **statistics that do not differ from the joint nulls after correction** (`reject` False in "
        "`tests()`) for the rotation, shuffle and untrained nulls: then the landscape's turns are what random, "
        "reordered or untrained steps of the same texts produce anyway;\n"
        "* **LTC not longer than the nulls** (`log_ltc` effect ≤ 0): trajectories as straight as, or straighter "
        "than, a random walk with the same steps are not unusually roundabout. The claims table in the README "
        "(`results/claims.csv`) has the verdicts on 50 real texts per model;\n"
        "* in normalised space, only the sphere nulls count: a walk on the √d sphere is more roundabout than a "
        "walk in R^d, so comparing sphere states with R^d walks manufactures curvature;\n"
        "* results that flip with the thresholds (try `sharp_deg`, `flat_deg`, or `thresholds='null_sd'`, "
        "which derives them from each null) or with the text: a claim that survives only one choice is weak.\n\n"
        "Significance against a null only rules out that null. The thresholds and nulls are tlgeom's "
        "choices; the paper's exact criteria could not be checked."
    ),
    c(
        "# the verdicts in one table: True = significant at alpha=0.05, None = the null cannot test that quantity\n"
        "import pandas as pd\n"
        "pd.DataFrame(report.verdicts()).T"
    ),
]
write(cells, NAME)
