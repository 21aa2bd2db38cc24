"""Re-run every claim tlgeom makes on real models and real text, into one table: ``results/claims.csv``.

The claims are the declared analyses that have a :class:`~tlgeom._declare.Claim`
(:data:`tlgeom.experiments.analyses.ANALYSES`); :func:`run_claim` runs one on its inputs (the corpus texts,
each bundled minimal pair, or the weights), once per space where it is per space, with the run's settings it
takes, and keeps its ``tests()`` rows. The parts (``--parts``), in the registry's order: ``curvature``
(:func:`tlgeom.curvature_test`, raw and normalized, against the joint nulls and ``--init-seeds`` untrained
initialisations), ``eclipse`` (:func:`tlgeom.deflection` per bundled minimal pair and
:func:`tlgeom.meaning_vs_control` across pairs), ``heads`` (the QK metric's positive mass, layers as the
units), ``straightening``, ``gibberish``, ``entropy``, ``language`` and ``readout`` (each its experiment
module's doc). Texts are ``--texts`` documents of ``--corpus`` in file order, each cut to at most
``--max-tokens`` tokens of the model's own tokenizer (special tokens included); texts are the unit of
inference wherever texts are analysed. A part a model cannot run (no language-model head, too few matched
controls) gets one row with ``statistic = "not run"`` and the reason in ``note``.

Every row has the columns of ``tests()`` (:data:`tlgeom._result.TEST_COLUMNS`, then ``n``,
``inference_unit``, ``adjusted_for`` and each report's own) plus ``claim``, ``model``, ``corpus``, ``item``
and ``tlgeom_version``; the run's settings go to ``claims.json`` beside it (``runs``: the settings that made
each part's rows; ``parts``: each part's run time), and a forest plot per claim to ``forest_<claim>.png``.

Usage (``tlgeom claims`` writes ``tlgeom-claims/claims.csv`` by default; in the repository
``python scripts/claims.py`` is the same command writing the committed ``results/claims.csv``)::

    tlgeom claims                                 # the real run: smollm2-135m and minilm-l6 (2 CPUs: an hour)
    tlgeom claims --models gpt2 --corpus my.jsonl # any model load_model accepts, any corpus file
    tlgeom claims --quick                         # tiny random models, 8 texts: a smoke test (seconds)
    tlgeom claims --parts heads --models gemma3-270m  # one part, one model: the other rows are kept
    python scripts/claims.py --readme results/README.md README.md
                                                  # rewrite the README blocks and forest plots from the CSV

The README blocks are rendered by :mod:`tlgeom.report.readme` from the CSV alone
(``tests/unit/test_claims_table.py`` regenerates them and compares).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from tlgeom._args import SPACES as _SPACES
from tlgeom._declare import Analysis
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import TEST_COLUMNS as _TEST_COLUMNS
from tlgeom._result import TestReport
from tlgeom.experiments.analyses import ANALYSES, CLAIM_MODELS
from tlgeom.report.readme import (  # noqa: F401  (the README blocks of the table, re-exported)
    BEGIN,
    END,
    PARTS,
    VERDICTS_BEGIN,
    VERDICTS_END,
    part_of,
    read_block,
    read_verdicts,
    render_block,
    render_runs,
    render_verdicts,
    replace_block,
    replace_verdicts,
)

#: where ``tlgeom claims`` writes by default (``scripts/claims.py`` passes the repository's ``results/``)
DEFAULT_OUT = Path("tlgeom-claims") / "claims.csv"
#: the columns of every ``tests()`` table (:data:`tlgeom._result.TEST_COLUMNS`)
TEST_COLUMNS = list(_TEST_COLUMNS)
ID_COLUMNS = ["claim", "model", "corpus", "item"]
COLUMNS = ID_COLUMNS + TEST_COLUMNS + ["tlgeom_version"]
#: the models of the committed table (``tlgeom claims`` default), the spaces of its curvature rows, and its
#: parts (the declared analyses' claims, :func:`tlgeom.experiments.analyses.claim_parts`)
MODELS = CLAIM_MODELS
SPACES = _SPACES


#: the settings recorded per run (``claims.json`` ``runs``): what made each part's rows
RUN_KEYS = ("corpus_label", "n_texts", "max_tokens", "n_sims", "untrained_seeds", "seed", "alpha", "correction")


def run_keys(parts: list[str], spaces: list[str]) -> list[str]:
    """The ``runs`` keys of a run: ``curvature/<space>`` per space, the part's name otherwise."""
    return ([f"curvature/{sp}" for sp in spaces] if "curvature" in parts else []) + [
        p for p in parts if p != "curvature"
    ]


def _runs_of(settings: dict) -> dict[str, dict]:
    """``settings["runs"]``, with the older ``curvature_runs`` record (per space) read as ``curvature/<space>``."""
    runs = {f"curvature/{sp}": v for sp, v in settings.get("curvature_runs", {}).items()}
    return {**runs, **settings.get("runs", {})}


def _part_seconds(settings: dict, parts: list[str]) -> dict[str, float]:
    """Each part's own run time: its seconds summed over the models (``models[m]["seconds_<part>"]``)."""
    models = settings.get("models", {}).values()
    return {p: round(sum(float(m.get(f"seconds_{p}", 0.0)) for m in models), 1) for p in parts}


def _cap_texts(runs: dict[str, dict]) -> dict[str, dict]:
    """``runs`` (of this run) with each part capped by its declaration (``Claim.max_texts``) recording the texts
    it ran on, ``min(n_texts, max_texts)``, not the corpus size."""
    caps = {a.claim.part: a.claim.max_texts for a in ANALYSES if a.claim is not None and a.claim.max_texts}
    for k, run in runs.items():
        cap, n = caps.get(k.split("/")[0]), run.get("n_texts")
        if cap is not None and isinstance(n, int):
            run["n_texts"] = min(n, cap)
    return runs


def _texts_of_rows(runs: dict[str, dict], table: pd.DataFrame) -> dict[str, dict]:
    """``runs`` kept from earlier runs, each recording the number of texts its own text-level rows were computed
    on (the largest ``n`` of its rows whose unit is the text): a record written before the per-part count was
    recorded (it said the corpus size) is read from the rows it made."""
    rows = table[table.get("inference_unit", pd.Series("", index=table.index)).eq("text")]
    part = rows["claim"].map(part_of)
    key = part.where(part != "curvature", "curvature/" + rows["space"].astype(str))
    n = pd.to_numeric(rows["n"] if "n" in rows else rows["n_texts"], errors="coerce").groupby(key).max()
    for k, run in runs.items():
        if k in n.index and pd.notna(n[k]) and isinstance(run.get("n_texts"), int):
            run["n_texts"] = int(n[k])
    return runs


def merge(new: pd.DataFrame, settings: dict, out: Path, parts: list[str]) -> tuple[pd.DataFrame, dict]:
    """``new`` plus the rows (and settings) that ``out`` already holds of the parts, spaces and models
    not re-run.

    ``runs`` records, per part (per space for curvature), the settings that made its rows, so that a
    table assembled from several runs says which settings each row came from.
    """
    sidecar = out.with_suffix(".json")
    spaces = settings.get("spaces", list(SPACES))
    with_inits = {a.claim.part for a in ANALYSES if a.claim is not None and "init_seeds" in a.claim.settings}
    this_run = {
        k: {key: settings.get(key) for key in RUN_KEYS if key != "untrained_seeds" or k.split("/")[0] in with_inits}
        for k in run_keys(parts, spaces)
    }  # the untrained seeds of the parts that take them (the others re-initialise once, from seed)
    _cap_texts(this_run)
    if set(parts) == set(PARTS) or not out.is_file() or not sidecar.is_file():
        return new, {**settings, "parts": _part_seconds(settings, parts), "runs": this_run}
    old, old_settings = read_table(out), json.loads(sidecar.read_text())
    replaced = old["claim"].map(part_of).isin(parts)
    # curvature rows are per space, every part's rows per model: re-running one space or one model keeps the others
    replaced &= (old["claim"].map(part_of) != "curvature") | old["space"].isin(spaces)
    replaced &= old["model"].isin(list(settings.get("models", {})))
    kept = old[~replaced]
    table = pd.concat([kept, new], ignore_index=True) if len(kept) else new
    table["_order"] = table["claim"].map(part_of).map(PARTS.index)
    table = table.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
    merged = {**old_settings, **settings}
    merged["models"] = {
        m: {**old_settings.get("models", {}).get(m, {}), **settings["models"].get(m, {})}
        for m in {*old_settings.get("models", {}), *settings["models"]}
    }
    merged["parts"] = {**old_settings.get("parts", {}), **_part_seconds(settings, parts)}
    merged.pop("curvature_runs", None)
    merged["runs"] = {**_texts_of_rows(_runs_of(old_settings), kept), **this_run}
    merged["spaces"] = sorted(table.loc[table["claim"].map(part_of) == "curvature", "space"].unique())
    return table, merged


# ------------------------------------------------------------------------------------------------ texts


def special_count(model: Any, probe: str = "the") -> int:
    """How many special tokens (BOS, CLS, SEP) the model's ``to_tokens`` adds to a text."""
    return int(model.to_tokens(probe).shape[-1]) - len(model.tokenizer(probe, add_special_tokens=False)["input_ids"])


def truncate_to_tokens(tokenizer: Any, text: str, max_tokens: int, n_special: int) -> tuple[str, int]:
    """``text`` cut so that it is at most ``max_tokens`` tokens long with the ``n_special`` special tokens.

    The cut falls at the end of a whole token (the tokenizer's character offsets) and trailing whitespace
    is dropped. Returns the text and its token count, special tokens included.
    """
    keep = max_tokens - n_special
    if keep < 1:
        raise ValueError(f"max_tokens={max_tokens} leaves no room beside {n_special} special tokens")
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]

    def count(t: str) -> int:
        return n_special + len(tokenizer(t, add_special_tokens=False)["input_ids"])

    if len(offsets) > keep:
        text = text[: offsets[keep - 1][1]].rstrip()
    while count(text) > max_tokens:  # a re-tokenised cut can merge differently: drop a token until it fits
        keep -= 1
        text = text[: offsets[keep - 1][1]].rstrip()
    return text, count(text)


def corpus_texts(corpus: str, n_texts: int, min_words: int) -> list[Any]:
    from tlgeom.data.corpora import load_corpus

    docs = load_corpus(corpus, n=n_texts, min_words=min_words)
    if len(docs) < n_texts:
        from tlgeom._errors import bad_arg

        raise bad_arg(
            "--texts", n_texts, f"at most {len(docs)} (the documents of {corpus!r} with >= {min_words} words)"
        )
    return docs


# ------------------------------------------------------------------------------------------------ runs


def tests_frame(result: Any, what: str) -> pd.DataFrame:
    """``result.tests()`` checked for the shared columns (:class:`tlgeom._result.TestReport`)."""
    if not isinstance(result, TestReport):
        raise TypeError(f"{what}: {type(result).__name__} is no TestReport; the claims table needs its tests()")
    frame = result.tests()
    missing = [c for c in TEST_COLUMNS if c not in frame.columns]
    if missing:
        raise TypeError(f"{what}: .tests() lacks columns {missing}")
    return frame


def _not_run(exc: Exception, space: str | None) -> pd.DataFrame:
    """The one row of a claim the model cannot run (why in ``note``): recorded, never dropped silently."""
    row: dict[str, Any] = dict.fromkeys(TEST_COLUMNS, float("nan"))
    row.update(null="none", statistic="not run", space=space or "raw", n_texts=0, n=0, reject=False)
    row.update(inference_unit="none", informative=False)
    row["note"] = f"not run: {' '.join(str(exc).split())[:300]}"
    return pd.DataFrame([row])


def run_claim(analysis: Analysis, model: Any, name: str, texts: list[str], settings: dict) -> list[pd.DataFrame]:
    """One declared analysis's rows of the claims table (its :class:`~tlgeom._declare.Claim`): the analysis run
    on its inputs (the corpus texts, each bundled minimal pair, or the weights), once per space where it is
    per space, with the run's ``settings`` it takes; its ``tests()`` rows with claim, model, corpus, item.

    A ``model`` column in ``tests()`` marks a reference model's own rows (the untrained baseline): they keep
    ``item = "untrained reference"``.
    """
    claim = analysis.claim
    if claim is None:
        raise bad_arg("analysis", analysis.key, "an analysis that declares a claim")
    t0 = time.perf_counter()
    corpus = claim.corpus or settings["corpus_label"]
    if claim.inputs == "pairs":
        from tlgeom.experiments.eclipse import minimal_pairs

        units: list[tuple[Any, str]] = [(pair, pair.name) for pair in minimal_pairs()]
    elif claim.inputs == "corpus":
        units = [(list(texts[: claim.max_texts]), "")]
    else:
        units = [(None, "")]
    frames = []
    for space in settings["spaces"] if claim.per_space else [None]:
        values = {**settings, "model_name": name, **({"space": space} if space else {})}
        for inputs, item in units:
            what = f"{analysis.key}({name}{', ' + item if item else ''}{', space=' + space if space else ''})"
            try:
                frame = tests_frame(analysis.execute(model, inputs, **values), what)
            except TlgeomError as exc:
                if not claim.not_run:
                    raise
                print(f"  {what}: not run: {exc}", file=sys.stderr)
                frame = _not_run(exc, space)
            frame = frame.copy()
            items = pd.Series(item, index=frame.index)
            if "model" in frame.columns:
                items = items.where(frame["model"].eq("trained"), "untrained reference")
                frame = frame.drop(columns="model")
            frame["claim"], frame["model"], frame["corpus"], frame["item"] = claim.name, name, corpus, items
            frames.append(frame)
    n = sum(len(f) for f in frames)
    print(f"  {claim.name}: {n} rows, {time.perf_counter() - t0:.0f} s", flush=True)
    return frames


def load(name: str, quick: bool, device: str | None = None) -> Any:
    if quick:
        from tlgeom.models import tiny_model

        return tiny_model(name, seed=0) if device is None else tiny_model(name, seed=0).to(device)
    import tlgeom

    return tlgeom.load_model(name, device=device)


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, dict[str, Any]]:
    import torch

    import tlgeom

    torch.set_num_threads(args.threads)
    docs = corpus_texts(args.corpus, args.texts, args.min_words)
    frames, settings_models = [], {}
    options = {
        "n_sims": args.n_sims,
        "init_seeds": args.init_seeds,
        "seed": args.seed,
        "alpha": args.alpha,
        "correction": args.correction,
        "skip_first": args.skip_first,
        "progress": not args.no_progress,
        "spaces": list(args.spaces),
        "corpus_label": args.corpus_label,
    }
    for name in args.models:
        model = load(name, args.quick, args.device)
        n_special = special_count(model)
        texts, n_tokens = zip(*(truncate_to_tokens(model.tokenizer, d.text, args.max_tokens, n_special) for d in docs))
        print(f"{name}: {len(texts)} texts, {min(n_tokens)}-{max(n_tokens)} tokens", flush=True)
        settings_models[name] = {
            "n_layers": int(model.cfg.n_layers),
            "d_model": int(model.cfg.d_model),
            "tokens_per_text": [int(n) for n in n_tokens],
        }
        for part in args.parts:
            t1 = time.perf_counter()
            for analysis in ANALYSES:
                if analysis.claim is not None and analysis.claim.part == part:
                    frames += run_claim(analysis, model, name, list(texts), options)
            settings_models[name][f"seconds_{part}"] = round(time.perf_counter() - t1, 1)
        del model
    table = pd.concat(frames, ignore_index=True)
    table["tlgeom_version"] = tlgeom.__version__
    # every row names its unit of inference and what its effect is adjusted for ("" = nothing)
    for column, fill in (("inference_unit", ""), ("adjusted_for", "")):
        table[column] = table[column].fillna(fill) if column in table.columns else fill
    table = table[COLUMNS + [c for c in table.columns if c not in COLUMNS]]
    settings = {
        "tlgeom_version": tlgeom.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "corpus": args.corpus,
        "corpus_label": args.corpus_label,
        "document_ids": [d.id for d in docs],
        "n_texts": len(docs),
        "min_words": args.min_words,
        "max_tokens": args.max_tokens,
        "spaces": list(getattr(args, "spaces", SPACES)),
        "n_sims": args.n_sims,
        "untrained_seeds": list(range(args.init_seeds)),
        "seed": args.seed,
        "alpha": args.alpha,
        "correction": args.correction,
        "skip_first": args.skip_first,
        "models": settings_models,
        "quick": args.quick,
        "threads": args.threads,
    }
    return table, settings


def read_table(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, keep_default_na=True, dtype={"item": str, "reject": str})


# ------------------------------------------------------------------------------------------------ main


def check_args(args: argparse.Namespace) -> None:
    """What the options' own checks (:meth:`tlgeom._declare.Command.run`) cannot see, before a model is
    loaded or a text is read: a TlgeomError naming the option."""
    if args.skip_first >= args.max_tokens - 2:
        raise bad_arg("--skip-first", args.skip_first, f"an integer in [0, --max-tokens − 2 = {args.max_tokens - 2})")
    if args.model is not None:
        args.models = [args.model]
    if args.text_file is not None:
        if not Path(args.text_file).is_file():
            raise bad_arg("--text-file", args.text_file, "an existing UTF-8 text file")
        args.corpus = args.text_file
    if args.device is not None:
        from tlgeom.models import check_device

        check_device(args.device)
    if len(set(args.models)) != len(args.models):
        raise bad_arg("--models", args.models, "distinct model names")
    if args.readme is None and not args.quick:
        from tlgeom.data.corpora import CORPORA

        if args.corpus not in CORPORA and not Path(args.corpus).exists():
            raise bad_arg("--corpus", args.corpus, f"one of {', '.join(CORPORA)} or an existing file")
    out = Path(args.out)
    if out.is_dir():
        raise bad_arg("--out", str(out), "the path of the table (a .csv file), not a directory")
    if out.suffix != ".csv":
        raise bad_arg("--out", str(out), "the path of the table, ending in .csv (its settings go beside it as .json)")
    if args.readme is None:
        from tlgeom._output import discard, probe_writable, stage_output

        # the folder checked writable and free of a user's file of these names before any model loads
        if out.parent.is_dir():
            discard(stage_output(out.parent, output_names(out), overwrite=args.overwrite, arg="--out"))
        else:  # a folder still to be made: probed at its nearest existing ancestor, leaving nothing behind
            probe_writable(out.parent, "--out", shown=out)


#: the claims that get a forest plot (their whole-corpus rows; per-point and per-item rows are in the CSV)
FOREST_CLAIMS = (
    "curvature",
    "heads_positive_mass",
    "straightening",
    "gibberish",
    "readout",
    "eclipse_meaning_vs_control",
)


def forest_name(out: Path, claim: str) -> str:
    """``forest_<claim>.png`` beside the table ``out`` (``<stem>_forest_<claim>.png`` for another stem)."""
    return f"forest_{claim}.png" if out.stem == "claims" else f"{out.stem}_forest_{claim}.png"


def output_names(out: Path) -> list[str]:
    """The files ``tlgeom claims --out OUT`` writes beside each other: the table, its settings and a forest
    plot per claim of :data:`FOREST_CLAIMS` the table has."""
    return [out.name, out.with_suffix(".json").name, *(forest_name(out, c) for c in FOREST_CLAIMS)]


def forest_plot(table: pd.DataFrame, claim: str, ax: Any = None) -> Any:
    """The claim's whole-corpus tests as a forest plot: one panel per statistic, one row per model, space and
    null, the effect with its 95 % CI; filled = rejected after the correction, hollow = not rejected, grey =
    cannot reject at any data (``informative`` False), red = significant on the claim's opposite side
    (``against``). Returns the figure (``ax``: draw the first statistic there, the others left out)."""
    import matplotlib.pyplot as plt

    t = table[table["claim"] == claim].copy()
    t["item"] = t["item"].fillna("").astype(str)
    t = t[(t["item"] == "") & ~t["statistic"].astype(str).str.contains("@", regex=False)]
    t = t[pd.to_numeric(t["effect"], errors="coerce").notna()]
    if not len(t):
        raise bad_arg("claim", claim, "a claim with whole-corpus rows in the table")
    stats = list(dict.fromkeys(t["statistic"].astype(str)))
    t["row"] = t["model"].astype(str) + " · " + t["space"].astype(str) + " · " + t["null"].astype(str)
    rows = list(dict.fromkeys(t["row"]))
    y = {r: len(rows) - 1 - i for i, r in enumerate(rows)}
    axes: list[Any]
    if ax is None:
        fig, grid = plt.subplots(
            1, len(stats), figsize=(2.6 * len(stats) + 2.4, 0.3 * len(rows) + 1.6), sharey=True, squeeze=False
        )
        axes = list(grid[0])
    else:
        fig, axes, stats = ax.figure, [ax], stats[:1]
    flag = lambda g, c: g[c].astype(str).eq("True") if c in g.columns else pd.Series(False, index=g.index)
    for a, st in zip(axes, stats):
        g = t[t["statistic"].astype(str) == st]
        rejected, against = flag(g, "reject"), flag(g, "against")
        uninformative = g["informative"].astype(str).eq("False") if "informative" in g.columns else rejected & False
        for (_, r), rej, ag, un in zip(g.iterrows(), rejected, against, uninformative):
            color = "0.6" if un else "tab:red" if ag else "tab:blue"
            eff, lo, hi = float(r["effect"]), float(r["ci_low"]), float(r["ci_high"])
            if lo == lo and hi == hi:
                a.plot([lo, hi], [y[r["row"]]] * 2, color=color, lw=1.4)
            a.plot([eff], [y[r["row"]]], "o", color=color, mfc=color if rej else "white", ms=5)
        a.axvline(0, color="k", lw=0.6)
        a.set_title(st, fontsize=9)
        a.tick_params(labelsize=7)
    axes[0].set_yticks(range(len(rows)))
    axes[0].set_yticklabels(rows[::-1], fontsize=7)
    fig.suptitle(
        f"{claim}: effect [95 % CI] per model · space · null (filled: rejected; hollow: not; grey: cannot reject; "
        "red: evidence against)",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def write_forest_plots(table: pd.DataFrame, folder: Path, out: Path) -> list[Path]:
    """A forest plot (:func:`forest_plot`) per claim of :data:`FOREST_CLAIMS` the table has, into ``folder``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    written = []
    for claim in FOREST_CLAIMS:
        try:
            fig = forest_plot(table, claim)
        except TlgeomError:  # the table has no whole-corpus rows of this claim
            continue
        path = folder / forest_name(out, claim)
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def execute(args: argparse.Namespace) -> int:
    """Execute ``tlgeom claims`` (its options declared in :mod:`tlgeom.cli`): run the claims, or with
    ``--readme`` only rewrite README blocks, as the module doc says."""
    args.out = Path(args.out)
    check_args(args)
    if args.readme is not None:
        sidecar = args.out.with_suffix(".json")
        runs = _runs_of(json.loads(sidecar.read_text())) if sidecar.is_file() else None
        table = read_table(args.out)
        block, verdicts = render_block(table, runs), render_verdicts(table, runs)
        for path in args.readme or [args.out.parent / "README.md"]:
            text = replace_block(path.read_text(encoding="utf-8") if path.exists() else "", block)
            path.write_text(replace_verdicts(text, verdicts))  # the verdicts block only where it is marked
            print(f"wrote the claims block{' and the curvature verdicts' if read_verdicts(text) else ''} of {path}")
        from tlgeom._output import staged

        forests = [forest_name(args.out, c) for c in FOREST_CLAIMS]
        with staged(args.out.parent, forests, "tlgeom claims --readme", overwrite=args.overwrite, arg="--out") as tmp:
            plots = write_forest_plots(table, tmp, args.out)
        print(f"wrote {len(plots)} forest plots beside {args.out}: " + ", ".join(p.name for p in plots))
        return 0
    if args.quick:
        if args.models == list(MODELS):
            args.models = ["gpt2", "llama"]
        args.texts, args.n_sims, args.max_tokens = min(args.texts, 8), min(args.n_sims, 19), min(args.max_tokens, 48)
        args.init_seeds = min(args.init_seeds, 2)
        if args.out == DEFAULT_OUT:
            args.out = Path(os.environ.get("TMPDIR", "/tmp")) / "claims-quick.csv"
    args.corpus_label = Path(args.corpus).name if Path(args.corpus).suffix else args.corpus
    t0 = time.perf_counter()
    table, settings = run(args)
    settings["seconds"] = round(time.perf_counter() - t0, 1)
    from tlgeom._output import staged

    table, settings = merge(table, settings, args.out, args.parts)
    names = output_names(args.out)
    with staged(
        args.out.parent, names, f"tlgeom claims ({args.out.name})", overwrite=args.overwrite, arg="--out"
    ) as tmp:
        table.to_csv(tmp / names[0], index=False)
        (tmp / names[1]).write_text(json.dumps(settings, indent=2) + "\n")
        write_forest_plots(table, tmp, args.out)
    print(render_block(table).split("\n", 2)[2].rsplit("\n", 1)[0])  # the README's table, markers left out
    print(f"wrote {args.out} ({len(table)} rows) and {args.out.with_suffix('.json').name} in {settings['seconds']} s")
    return 0
