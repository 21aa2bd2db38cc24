"""Every analysis tlgeom runs from the command line, the report or the claims table, declared once.

Each :class:`~tlgeom._declare.Analysis` names its experiment (``"module:function"``, imported only when it
runs), its options, the words of its report section and its part of the claims table. ``tlgeom`` builds its
subcommands from :data:`ANALYSES` (:mod:`tlgeom.cli`), ``tlgeom report`` runs every analysis whose
``commands`` include ``"report"`` and ``tlgeom claims`` every analysis with a ``claim``. Adding an analysis
means adding its experiment and one declaration here; nothing in :mod:`tlgeom.cli` or :mod:`tlgeom.report`.

The module imports no torch (``tlgeom --help`` reads it).
"""

from __future__ import annotations

from tlgeom._args import CONTROLS
from tlgeom._declare import INIT_SEEDS, N_SIMS, SPACE, Analysis, Claim, Option

__all__ = ["ANALYSES", "CLAIM_MODELS", "analysis", "claim_parts"]

#: the models of the committed claims table (``tlgeom claims``'s default ``--models``)
CLAIM_MODELS = ("smollm2-135m", "minilm-l6")

#: the claims' shared settings of a text-level test
_TEST_SETTINGS = ("seed", "alpha", "correction", "progress")

ANALYSES: tuple[Analysis, ...] = (
    Analysis(
        key="landscape",
        title="Curvature landscape",
        run="tlgeom.experiments.landscape:curvature_landscape",
        inputs="text",
        options=(
            SPACE,
            Option(
                "view",
                "heatmap",
                "heatmap of tokens × layer vertices, or the paper's view: states in one PCA plane with the turning "
                "angle interpolated over it, four layers",
                type=str,
                choices=("heatmap", "pca"),
            ),
        ),
        commands=("landscape", "report"),
        help="curvature landscape of a text (one streamed forward pass)",
        description="Turning angle of every token's trajectory at every layer vertex.",
        meaning=(
            "Each cell is the turning angle between a token's layer step into a vertex and the step out of it: "
            "0° = straight on, 90° = orthogonal, 180° = reversal. Length-to-chord is path length / straight-line "
            "distance from the embedding to the last layer (1 = straight). Independent random directions in "
            "R^{d_model} would turn by about 90°, so the landscape alone does not show 'bending': see the "
            "null-model test."
        ),
        against=(
            "The landscape is descriptive. It speaks against the curved-spacetime reading only together with the "
            "null-model test: a landscape indistinguishable from random-direction walks has no structured curvature."
        ),
    ),
    Analysis(
        key="curvature_test",
        title="Curvature against null models",
        run="tlgeom.experiments.curvature:curvature_test",
        inputs="texts",
        options=(SPACE, N_SIMS, INIT_SEEDS),
        settings=("seed", "progress"),
        commands=("curvature-test", "report"),
        help="sharp/flat turns and length-to-chord against null models",
        description="Counts sharp and flat turns and the median length-to-chord of a text's trajectories and "
        "compares them with null models (permutation p-values).",
        verdict="verdict_line",
        meaning=(
            "Each of the {n_units} sentence(s) is one unit: per sentence, the fraction of sharp+flat turns (beyond "
            "each null's own 2.5 %/97.5 % angle quantiles), the mean turning angle, the mean |θ − 90°| and the mean "
            "log length-to-chord are compared with that sentence's own simulations under joint nulls (one random "
            "rotation or layer permutation per sentence, shared by its tokens, which keeps their dependence) and "
            "with the same sentence through the re-initialised architecture (paired, sign-flip test across "
            "sentences). p-values are exact Monte-Carlo p-values ({result.n_sims} simulations), adjusted with "
            "{result.correction} across the table; effects come with a bootstrap CI over sentences."
        ),
        against=(
            "Evidence against 'curved spacetime': no rejected test against the rotation, shuffle and untrained "
            "nulls, or effects whose CIs straddle 0; an LTC that is not longer than the nulls says the paths are "
            "not more winding than chance."
        ),
        claim=Claim(
            "curvature",
            "curvature",
            settings=("n_sims", "init_seeds", "skip_first", *_TEST_SETTINGS),
            per_space=True,
        ),
    ),
    Analysis(
        key="sphere",
        title="The normalisation hypersphere (Traveling Words)",
        run="tlgeom.experiments.sphere:sphere_report",
        inputs="text",
        commands=("sphere", "report"),
        help="Traveling Words: the normalisation hypersphere, layer by layer",
        description="Norm of every normalised state against √d, the LayerNorm hyperplane, γ/β.",
        meaning=(
            "Every LayerNorm/RMSNorm output before its affine part should have norm √d (up to ε, corrected "
            "exactly); LayerNorm outputs also lie on the hyperplane orthogonal to the all-ones vector. γ and β "
            "then stretch and shift the sphere into an ellipsoid. The raw residual norm entering each norm shows "
            "how much the stream grows with depth."
        ),
        against=(
            "Normalised states off the √d sphere beyond float rounding (after the ε correction) would contradict "
            "the hypersphere picture; a γ/β ellipsoid with extreme axis ratios weakens the 'sphere' reading of what "
            "the next weights see."
        ),
    ),
    Analysis(
        key="deflection",
        title="Eclipse experiment: deflection by a context edit",
        run="tlgeom.experiments.eclipse:deflection",
        inputs="edit",
        options=(
            Option(
                "controls",
                CONTROLS,
                "number of matched control edits",
                type=int,
                minimum=0,
                why="power at the same false-onset rate: a planted deflection of 2 / 4 depth units found in "
                "0.70 / 0.997 of edits, against 0.60 / 0.95 with 19, the fewest that can reach p <= 0.05 "
                "(results/onset_calibration.csv)",
            ),
        ),
        settings=("seed",),
        fixed={"prototypes": "senses"},
        commands=("deflect", "report"),
        help="eclipse experiment: deflection of a target by a context edit",
        description="Deflection of a target word's trajectory when its context is edited, against control "
        "edits, attributed by activation patching. Without --text, a bundled homonym pair (--pair) is used.",
        meaning=(
            "The target word's trajectory is recorded in the clean and in the edited text and compared point by "
            "point (distance, angle). Control edits are edits of the same kind at the same place with words "
            "matched in part of speech (in context), frequency and length; the onset is the first layer where the "
            "edit deflects the target more than its controls, with the error controlled across all layers "
            "(rank p-values, max-statistic correction; none when no layer is significant). "
            "'Toward' is the fraction of the way the edit moved the target toward the other sense's prototype "
            "(mean state over bundled contexts of that sense)."
        ),
        against=(
            "Evidence against the eclipse reading: meaning-changing edits that deflect no more than matched "
            "control edits, or no movement toward the other sense; over many pairs use "
            "tlgeom.meaning_vs_control (one pair is an illustration, not a test)."
        ),
        claim=Claim(
            "eclipse_deflection",
            "eclipse",
            inputs="pairs",
            not_run=True,
            units="bundled minimal pairs",
            corpus="minimal_pairs",
        ),
    ),
    Analysis(
        key="patching",
        title="Activation patching: where the deflection is carried",
        run="tlgeom.experiments.patching:patch_attribution",
        inputs="edit",
        options=(Option("no_patch", False, "skip the activation-patching attribution", flag=True),),
        settings=("progress",),
        commands=("deflect", "report"),
        skip="no_patch",
        meaning=(
            "Patching writes the clean activation at one (layer, position) into the edited run and measures how "
            "much of the target's final deflection it restores (1 = all of it); cells that causality or equal "
            "activations make 0 are not run."
        ),
        against=(
            "No cell restoring a clear part of the deflection, or restoration spread evenly over layers and "
            "positions, would say the edit's effect is not carried by a localised route."
        ),
    ),
    Analysis(
        key="meaning_vs_control",
        title="Meaning-changing vs matched control edits, across pairs",
        run="tlgeom.experiments.eclipse:meaning_vs_control",
        inputs="model",
        claim=Claim(
            "eclipse_meaning_vs_control",
            "eclipse",
            inputs="model",
            settings=("seed", "alpha", "model_name"),
            units="bundled minimal pairs",
            corpus="minimal_pairs",
        ),
    ),
    Analysis(
        key="heads",
        title="Attention heads' QK metric: positive mass against the untrained model",
        run="tlgeom.experiments.riemann:head_metric_signature",
        inputs="model",
        fixed={"reference": True},
        claim=Claim(
            "heads_positive_mass",
            "heads",
            inputs="model",
            settings=("seed", "alpha", "init_seeds"),
            units="every attention head's weights, layers as the units",
            corpus="weights",
        ),
    ),
    Analysis(
        key="straightening",
        title="Straightening: the token path across tokens, layer by layer",
        run="tlgeom.experiments.straightening:straightening_test",
        inputs="texts",
        options=(SPACE, INIT_SEEDS),
        settings=("seed", "progress"),
        commands=("straightening",),
        help="straightening (Hosseini & Fedorenko): across-token curvature, input against depth",
        description="Across-token curvature of each text at every layer; is it lower deeper in the model than "
        "at the input, and more than in the untrained model? Each sentence is one unit.",
        meaning=(
            "At each layer the text's token states form a path across tokens; its curvature is the mean angle "
            "between consecutive steps (degrees). Straightening = input curvature minus the curvature at the "
            "last point and at mid depth, per text, tested across the {n_units} text(s) against 0 and against "
            "the same architecture untrained ({result.init_seeds} initialisations: the largest p counts)."
        ),
        against=(
            "Evidence against straightening: no contrast rejects, or the untrained model straightens as much "
            "(then it is the architecture, not learning)."
        ),
        claim=Claim("straightening", "straightening", settings=("seed", "alpha", "correction", "init_seeds")),
    ),
    Analysis(
        key="gibberish",
        title="Text against gibberish inputs (shuffled words, random tokens)",
        run="tlgeom.experiments.gibberish:gibberish_test",
        inputs="texts",
        options=(SPACE,),
        settings=("seed", "progress"),
        commands=("gibberish",),
        help="curvature of text against the same model on gibberish (shuffled words, random tokens)",
        description="Each text's mean turning angle, |θ − 90°| and log length-to-chord against the same model "
        "on its words shuffled and on random tokens, paired per text. Each sentence is one unit.",
        meaning=(
            "Per text, the same statistics on the text, on its words in a random order and on as many random "
            "tokens; text minus gibberish is tested across the {n_units} text(s) by two-sided sign flips."
        ),
        against=(
            "A curvature statistic that does not differ from gibberish is what the model does to any token "
            "sequence: no evidence that language shapes it."
        ),
        claim=Claim("gibberish", "gibberish", settings=("seed", "alpha", "correction", "progress")),
    ),
    Analysis(
        key="entropy",
        title="Contextual curvature against next-token entropy",
        run="tlgeom.experiments.entropy:entropy_test",
        inputs="texts",
        options=(SPACE,),
        settings=("seed", "progress"),
        commands=("entropy",),
        help="contextual (across-token) curvature against next-token entropy, layer by layer",
        description="Per text and layer, the partial correlation (on position and token frequency) of the "
        "across-token turning angle with the model's next-token entropy; tested across texts per layer.",
        meaning=(
            "At each layer the angle of the token path at a token is correlated, within each text, with the "
            "entropy of the model's next-token distribution there (both residualised on position and token "
            "frequency); the mean Fisher-z over the {n_units} text(s) is tested against 0, Holm across layers."
        ),
        against="No layer rejecting, or a correlation of the opposite sign, is evidence against the claim.",
        claim=Claim(
            "entropy", "entropy", settings=("seed", "alpha", "correction", "progress"), max_texts=100, not_run=True
        ),
    ),
    Analysis(
        key="language",
        title="Curvature against language structure (spaCy annotations)",
        run="tlgeom.experiments.language:curvature_vs_language",
        inputs="texts",
        claim=Claim("language", "language", settings=(*_TEST_SETTINGS, "init_seeds"), max_texts=100),
    ),
    Analysis(
        key="readout",
        title="Curvature against what the model reads out (logit lens)",
        run="tlgeom.experiments.readout:curvature_vs_readout",
        inputs="texts",
        claim=Claim("readout", "readout", settings=(*_TEST_SETTINGS, "init_seeds"), max_texts=20, not_run=True),
    ),
)


def analysis(key: str) -> Analysis:
    """The declared analysis ``key``."""
    for a in ANALYSES:
        if a.key == key:
            return a
    raise KeyError(f"no analysis {key!r}; declared: {', '.join(a.key for a in ANALYSES)}")


def claim_parts() -> tuple[str, ...]:
    """The ``tlgeom claims --parts`` names, in the registry's order."""
    return tuple(dict.fromkeys(a.claim.part for a in ANALYSES if a.claim is not None))
