"""Builds tutorials/00_quickstart.ipynb (committed without outputs; CI executes it)."""

import nbformat as nbf
from _nb import colab_cell, write

cells = [
    nbf.v4.new_markdown_cell(
        "# tlgeom quickstart: token trajectories through the layers\n\n"
        "Record every token's residual stream at each layer of an offline model, check it, and measure "
        "how each trajectory bends."
    ),
    colab_cell(),
    nbf.v4.new_code_cell(
        "import torch\n"
        "import tlgeom\n\n"
        "model = tlgeom.load_model('smollm2-135m')   # SmolLM2-135M-Instruct, 30 layers, d_model 576\n"
        "traj = tlgeom.record_trajectories(model, ['The river bank was muddy after the rain.',\n"
        "                                          'She paid the cheque in at the bank.'])\n"
        "traj.states.shape, traj.mask.sum(1), traj.hook_names[:3]"
    ),
    nbf.v4.new_markdown_cell(
        "Point 0 is the input of block 0; point *l* is the output of block *l*−1. Padding is masked "
        "(`traj.mask`) and every metric returns NaN there."
    ),
    nbf.v4.new_code_cell(
        "angles = tlgeom.turning_angles(traj).rad2deg()     # [batch, pos, point-2] degrees\n"
        "ltc = tlgeom.length_to_chord(traj)                  # [batch, pos]\n"
        "print('mean turning angle per token (sentence 0):', angles[0].nanmean(-1).round(decimals=1))\n"
        "print('length-to-chord (sentence 0):', ltc[0].round(decimals=2))\n"
        "print(f'random directions in R^{model.cfg.d_model} would turn by 90 ± {torch.tensor(model.cfg.d_model).rsqrt().rad2deg():.1f} degrees')"
    ),
    nbf.v4.new_markdown_cell("Streaming gives the same numbers without storing all layers:"),
    nbf.v4.new_code_cell(
        "out = tlgeom.stream(model, ['The river bank was muddy after the rain.',\n"
        "                            'She paid the cheque in at the bank.'])\n"
        "torch.testing.assert_close(out['turning_angles'], tlgeom.turning_angles(traj), equal_nan=True)\n"
        "df = traj.to_frame(); df[df.batch == 0].groupby('label', sort=False).norm.mean().head()"
    ),
    nbf.v4.new_code_cell("traj.plot(batch=1);"),
]
write(cells, "00_quickstart.ipynb")
