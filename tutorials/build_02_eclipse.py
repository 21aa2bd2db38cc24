"""Builds tutorials/02_eclipse.ipynb (committed without outputs; CI executes it)."""

import nbformat as nbf
from _nb import colab_cell, header, params_cell, write

NAME = "02_eclipse.ipynb"
c = nbf.v4.new_code_cell
md = nbf.v4.new_markdown_cell
cells = [
    header(
        NAME,
        "# 02 · The eclipse experiment: deflection by a context edit, and activation patching\n\n"
        "Einstein's eclipse test measured how far a mass deflects starlight. Here the 'light' is one token's "
        "residual stream as it passes through the layers, and the 'mass' is an edit of its context: we change "
        "one word *before* the target (`river bank` → `savings bank`) and measure, layer by layer, how far the "
        "target's trajectory is deflected, against a null of random control edits at the same place, and "
        "toward the other sense's prototype. Then activation patching shows which (layer, position) carries "
        "the deflection, and a paired test over all bundled pairs asks whether meaning-changing edits deflect "
        "more than controls.",
    ),
    colab_cell(),
    params_cell(
        CONTROLS=(16, 8, "control edits for the single example (its control band)"),
        N_CONTROLS=(8, 4, "control edits per pair in the test over all pairs"),
    ),
    c(
        "import torch\n"
        "import tlgeom\n"
        "from tlgeom.experiments.eclipse import deflection, minimal_pairs, sense_contexts, meaning_vs_control\n"
        "from tlgeom.experiments.patching import patch_attribution\n\n"
        "model = tlgeom.load_model(MODEL)\n"
        "print(f'{MODEL}: {model.cfg.n_layers} layers, d_model {model.cfg.d_model}')\n"
        "pairs = minimal_pairs('homonym')                   # bundled homonym pairs, each with its two senses\n"
        "pair = pairs[0]\n"
        "print(len(pairs), 'pairs; first:', pair.clean, '->', pair.edited, '| target:', pair.target,\n"
        "      pair.info['clean_sense'], '->', pair.info['edited_sense'])"
    ),
    md(
        "`deflection` records the target's trajectory in both texts (`tlgeom.record_trajectories`, so the "
        "tokenization and hook names are the usual ones) and compares them point by point: distance "
        "‖e − c‖, angle ∠(c, e), the angle between the two runs' layer steps, and its running sum. "
        "Seeded control edits replace `river` by random nouns of similar length and frequency; the "
        "**onset** is the first layer where the edit deflects more than every control. With sense "
        "prototypes (the mean target state over bundled contexts of each sense), `toward` is the fraction of "
        "the way the edit moved the target toward the other sense (0 = not at all, 1 = the full prototype "
        "difference)."
    ),
    c(
        "senses = sense_contexts()[pair.target]\n"
        "d = deflection(model, pair, controls=CONTROLS, seed=0,\n"
        "               prototypes=(senses[pair.info['clean_sense']], senses[pair.info['edited_sense']]))\n"
        "print('onset:', d.onset_label, '| controls:', d.control_texts[:3], '...')\n"
        "every = max(1, d.n_points // 8)\n"
        "d.to_frame()[['label', 'distance', 'angle_deg', 'step_deflection_deg', 'control_distance_hi', 'toward']].iloc[::every].round(3)"
    ),
    md(
        "**The figure** plots the distance ‖e − c‖ between the edited and the clean trajectory of the target "
        "at each point (red), against the band spanned by the control edits (grey: from the smallest to the "
        "largest control). Where the red curve leaves the band from above, the meaning edit deflects the "
        "target more than any same-place control; the dotted line marks the first such layer (the onset), "
        "if any. Residual norms grow with depth, so compare the curve with the band, not with its own scale."
    ),
    c("d.plot();"),
    md(
        "**Causal control.** In a decoder an edit strictly *after* the target cannot reach it: the deflection "
        "is exactly zero. In the bidirectional MiniLM encoder it is not."
    ),
    c(
        "after = minimal_pairs('after_target')[0]\n"
        "print(after.clean, '->', after.edited)\n"
        "print(f'{MODEL} max distance:', float(deflection(model, after).distance.max()))\n"
        "minilm = tlgeom.load_model('minilm-l6')\n"
        "print('minilm-l6 max relative distance:', round(float(deflection(minilm, after).relative_distance.max()), 3))\n"
        "del minilm"
    ),
    md(
        "**Where does the deflection come from?** `patch_attribution` writes the clean `resid_pre` at one "
        "(layer, position) into the edited run and measures the restored fraction "
        "1 − ‖p − c‖/‖e − c‖ of the target's final deflection — every cell of the layer × position grid in a "
        "few batched forward passes (the same numbers as TransformerLens' `get_act_patch_resid_pre`, which "
        "runs one pass per cell). `component='head'`, `'attn_out'` and `'mlp_out'` patch head outputs and "
        "sublayer outputs instead."
    ),
    c(
        "att = patch_attribution(model, 'She walked to the river bank.', 'She walked to the savings bank.', 'bank')\n"
        "print(f'{att.n_run} of {att.values.numel()} cells run in {att.n_batches} batched pass(es); '\n"
        "      f'the rest are exactly 0 (causality, identical activations)')\n"
        "att.plot();"
    ),
    md(
        "**The figure** is the layer (rows, bottom = first) × position (columns, tokens of the edited text) "
        "grid of restored fractions; red = patching that cell restores the clean result, the outlined column "
        "is the target. Where the deflection is carried moves across depth: typically at the edited word in "
        "the early layers and at the target's own position later, once attention has carried the context over. "
        "Per layer, the position that restores most:"
    ),
    c(
        "vals = att.values.nan_to_num(float('-inf'))\n"
        "best = vals.argmax(-1)\n"
        "for i in range(0, len(att.layers), max(1, len(att.layers) // 10)):\n"
        "    p = int(best[i])\n"
        "    print(f'layer {att.layers[i]:>2}: {att.str_tokens[p]!r:>12} (pos {p}) restores {float(att.values[i, p]):.2f}')\n"
        "hand_over = next((att.layers[i] for i, p in enumerate(best.tolist()) if p == att.target_pos), None)\n"
        "print('first layer where the target position carries most of the deflection:', hand_over)"
    ),
    md(
        "## Over all bundled homonym pairs\n\n"
        "Do meaning-changing edits deflect the target more than control edits at the same place, and move it "
        "toward the other sense? Paired one-sided tests (Wilcoxon signed-rank and an exact sign-flip "
        "permutation test) over the pairs. **The figure** shows the mean angle ∠(c, e) across depth for the "
        "meaning edits (red) and for their controls (grey)."
    ),
    c(
        "test = meaning_vs_control(model, pairs, controls=N_CONTROLS, seed=0, model_name=MODEL)\n"
        "print(test.verdict())\n"
        "test.plot();"
    ),
    md(
        "## What would count as evidence against the paper\n\n"
        "The eclipse claim is that meaning bends trajectories: a context edit that changes the target's sense "
        "deflects it more than an edit that does not, and toward the other sense. Evidence against it, in the "
        "output above:\n\n"
        "* **meaning edits that do not deflect more than matched controls** (the verdict says `do NOT deflect "
        "significantly more`, Wilcoxon p ≥ 0.05), or the red curve inside the control band at every layer of "
        "the single example (no onset);\n"
        "* **no movement toward the other sense**: `toward` for meaning edits not above the controls' (then the "
        "deflection is generic disturbance, not a change of meaning);\n"
        "* a deflection in a decoder from an edit *after* the target (that would be a bug in the measurement, "
        "not a finding).\n\n"
        "On SmolLM2 we found meaning edits deflecting more than controls and moving toward the other sense; "
        "check what your model gives. The pairs, senses and controls are tlgeom's bundled data, a small set: "
        "one significant test does not generalise beyond them."
    ),
]
write(cells, NAME)
