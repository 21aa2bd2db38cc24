"""Builds tutorials/04_traveling_words.ipynb (committed without outputs; CI executes it)."""

import nbformat as nbf
from _nb import colab_cell, write
c = nbf.v4.new_code_cell
md = nbf.v4.new_markdown_cell
cells = [
    md("# Traveling Words: the LayerNorm hypersphere, QK/OV key-value stores, trajectory projections\n\n"
       "Molina (2023) reads a transformer as word particles travelling on a hypersphere: normalisation puts every "
       "token on the sphere of radius √d, W_QK finds query-key alignments on it and W_OV acts as a key-value store. "
       "Here we check those claims on SmolLM2-135M (RMSNorm, grouped-query attention), offline."),
    colab_cell(),
    c("import torch\n"
      "import tlgeom\n"
      "from tlgeom.layernorm import sphere_report\n"
      "from tlgeom.circuits import singular_directions, noun_probe\n"
      "from tlgeom.projection import project_trajectory\n\n"
      "model = tlgeom.load_model('smollm2-135m')   # weights as trained (processed=False)\n"
      "report = sphere_report(model, 'To kill two birds with one stone.')\n"
      "print(report.summary())"),
    md("Every `hook_normalized` lies on the √d sphere (the small shortfall is ε, removed exactly by the ε correction). "
       "RMSNorm has no hyperplane constraint, unlike LayerNorm; γ stretches the sphere into an ellipsoid, and the raw "
       "residual entering each norm grows by orders of magnitude with depth."),
    c("report.to_frame()[['name', 'radius_rel_err_max', 'ones_cos_mean', 'raw_norm_mean', 'axis_ratio_p95_p5', 'out_norm_mean']].tail()"),
    c("report.plot();"),
    md("## QK / OV singular directions\n`W_QK = W_Q W_Kᵀ/√d_head` and `W_OV = W_V W_O` are decomposed through TransformerLens' "
       "`FactoredMatrix` (no 576×576 matrix is formed). Each top direction is mapped to its nearest tokens; the sign follows the "
       "paper's convention (the right vector points to the token it is most aligned with)."),
    c("ov = singular_directions(model, 'OV', layer=29, k=5)\n"
      "print(ov.table(29, 1))\n"
      "print('rank at 99% energy (of 64), layer 29 heads:', ov.rank_at(0.99)[0].tolist())"),
    md("## The key-value probe on 100 common nouns\nFor each single-token noun: the keys it attends to most (QK) and the tokens "
       "its value update points to (OV), per head. How often a noun's value update points back at the noun itself:"),
    c("probe = noun_probe(model, layers=[29], k=5)\n"
      "print(len(probe.nouns), 'nouns; self-value rate, layer 29:', probe.self_rates()['self_value'].mean(1).tolist())\n"
      "df = probe.to_frame()\n"
      "df[(df.noun == 'dog') & (df.layer == 29) & (df.circuit == 'OV') & (df['rank'] < 3)].groupby('head').token.apply(list)"),
    md("## A phrase travelling through the layers\nPCA fitted on the embeddings; every layer's state passed through the final "
       "RMSNorm (as the paper does with UMAP, available with `pip install 'tlgeom[umap]'`)."),
    c("tp = project_trajectory(model, 'To kill two birds with one stone')\n"
      "tp.plot(tokens=['kill', 'birds', 'stone']);"),
]
write(cells, "04_traveling_words.ipynb")
