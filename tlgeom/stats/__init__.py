"""Pure statistics: null models (:mod:`~tlgeom.stats.nulls`), p-values, bootstrap and
multiple-comparison corrections (:mod:`~tlgeom.stats.pvalues`). No model, no TransformerLens."""
