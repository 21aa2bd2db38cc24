"""Declarations: an option, an analysis and a command, each written once and read by every front end.

* :class:`Option`: one command-line option and the keyword it becomes (name, type, default, help,
  validation). A shared option (``--seed``, ``--n-sims``, ``--space``) is declared once below; a command
  that needs another default says so with :meth:`Option.but`, giving the reason, which ``--help`` prints.
* :class:`Analysis`: one analysis: its options, ``run(model, inputs, **options) -> Result`` (named as
  ``"module:function"``, imported only when it runs), the words of its report section and, when it
  makes a claim, its part of the claims table (:class:`Claim`). The registry is
  :data:`tlgeom.experiments.analyses.ANALYSES`.
* :class:`Command`: one ``tlgeom`` subcommand: its options, in order, and what executes it.
  :mod:`tlgeom.cli` builds every subcommand's parser from these and nothing else.

Nothing here imports torch, so ``tlgeom --help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tlgeom import _args
from tlgeom._errors import TlgeomError, bad_arg

__all__ = [
    "ALPHA",
    "COMMON",
    "CORRECTION",
    "DEVICE",
    "INIT_SEEDS",
    "INPUTS",
    "MODEL",
    "NO_PROGRESS",
    "N_SIMS",
    "OUT",
    "OVERWRITE",
    "SEED",
    "SPACE",
    "TEXT",
    "TEXT_FILE",
    "Analysis",
    "Claim",
    "Command",
    "Option",
    "resolve",
]

#: the checks of :mod:`tlgeom._args` an option may name (``Option(check="seed")``)
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "seed": lambda v: _args.check_seed(v, allow_none=False),
    "alpha": _args.check_alpha,
    "correction": _args.check_correction,
}


def resolve(target: str) -> Any:
    """The object named ``"package.module:attribute"`` (imported now)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Option:
    """One option: ``--flag`` on the command line, ``name`` as a keyword.

    Attributes:
        name: the keyword (``n_sims``); the flag is ``--n-sims``.
        default: the value when the option is not given.
        help: what it is (``--help`` adds the default, and ``why`` when given).
        type: converts the command-line string (``int``, ``float``, ``str``); None for flags.
        choices: the accepted values.
        minimum, maximum: bounds of a number, checked before any model loads.
        nargs: ``"+"`` for a list.
        flag: a switch (``store_true``).
        group: options sharing a group are mutually exclusive (``--text`` / ``--text-file``).
        required: for a group: one of its options must be given.
        check: a named check of :mod:`tlgeom._args` (``"seed"``, ``"alpha"``, ``"correction"``).
        why: why this default (printed in ``--help``).
        metavar: the value's name in ``--help``.
    """

    name: str
    default: Any = None
    help: str = ""
    type: Callable[[str], Any] | None = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    nargs: str | None = None
    flag: bool = False
    group: str | None = None
    required: bool = False
    check: str | None = None
    why: str = ""
    metavar: str | None = None

    @property
    def flag_name(self) -> str:
        return "--" + self.name.replace("_", "-")

    def but(self, **changes: Any) -> Option:
        """This option with other settings for one use (a command's own default, with ``why``)."""
        return dataclasses.replace(self, **changes)

    def help_text(self) -> str:
        if self.flag or self.default is None:  # a None default is described by the help itself
            return self.help.replace("%", "%%")  # argparse formats help
        shown = " ".join(map(str, self.default)) if isinstance(self.default, (list, tuple)) else self.default
        return f"{self.help} (default {shown}{': ' + self.why if self.why else ''})".replace(
            "%", "%%"
        )  # argparse formats help

    def add_to(self, parser: Any) -> None:
        """Add the option to an argparse parser (or mutually exclusive group)."""
        if self.flag:
            parser.add_argument(self.flag_name, action="store_true", help=self.help_text())
            return
        kwargs: dict[str, Any] = {"default": self.default, "help": self.help_text()}
        for key in ("type", "choices", "nargs", "metavar"):
            if getattr(self, key) is not None:
                kwargs[key] = getattr(self, key)
        parser.add_argument(self.flag_name, **kwargs)

    def validate(self, value: Any) -> Any:
        """``value`` if acceptable, else a TlgeomError naming ``--flag`` and what it accepts."""
        if value is None or self.flag:
            return value
        if self.check is not None:
            try:
                return _CHECKS[self.check](value)
            except TlgeomError as exc:
                raise bad_arg(self.flag_name, value, str(exc).split(": expected ", 1)[-1]) from None
        values = value if isinstance(value, list) else [value]
        for v in values:
            low = self.minimum is not None and v < self.minimum
            high = self.maximum is not None and v > self.maximum
            if low or high:
                kind = "an integer" if self.type is int else "a number"
                bounds = (
                    f">= {self.minimum:g}"
                    if self.maximum is None
                    else f"<= {self.maximum:g}"
                    if self.minimum is None
                    else f"in [{self.minimum:g}, {self.maximum:g}]"
                )
                raise bad_arg(self.flag_name, value, f"{kind} {bounds}")
        return value


def add_options(parser: argparse.ArgumentParser, options: tuple[Option, ...]) -> None:
    """Add ``options`` in order; options of one ``group`` go into one mutually exclusive group."""
    groups: dict[str, Any] = {}
    for opt in options:
        if opt.group is None:
            opt.add_to(parser)
            continue
        if opt.group not in groups:
            groups[opt.group] = parser.add_mutually_exclusive_group(required=opt.required)
        opt.add_to(groups[opt.group])


def validate(options: tuple[Option, ...], args: argparse.Namespace) -> None:
    """Check every option's value in ``args`` (once, at the entry, before any model loads)."""
    for opt in options:
        setattr(args, opt.name, opt.validate(getattr(args, opt.name)))


# ------------------------------------------------------------------------------------------------ the vocabulary

MODEL = Option(
    "model",
    "smollm2-135m",
    "'smollm2-135m' (offline), 'minilm-l6' (offline), or any name tlgeom.load_model accepts, such as 'gpt2' "
    "where a model hub is reachable",
)
DEVICE = Option("device", None, "torch device, e.g. cpu, cuda, cuda:1 (default: cpu)", type=str, group=None)
SEED = Option("seed", 0, "seed of null simulations and control edits, an int in [0, 2**63)", type=int, check="seed")
OUT = Option("out", None, "output directory, written only when every analysis succeeded", type=str)
OVERWRITE = Option(
    "overwrite",
    False,
    "replace files in --out that tlgeom did not write (default: refuse, naming the file)",
    flag=True,
)
NO_PROGRESS = Option("no_progress", False, "no progress bars", flag=True)
TEXT = Option("text", None, "the text to analyse (default: the bundled ~160-token paragraph)", type=str, group="text")
TEXT_FILE = Option("text_file", None, "read the text from this UTF-8 file", type=str, group="text")
SPACE = Option(
    "space",
    "raw",
    "raw residual stream, or what each block's normalisation reads, on the √d sphere",
    type=str,
    choices=_args.SPACES,
)
N_SIMS = Option("n_sims", 999, "simulations per null", type=int, minimum=1)
INIT_SEEDS = Option(
    "init_seeds",
    1,
    "initialisations of the untrained-model null; its tests must hold against every one (the largest p counts)",
    type=int,
    minimum=1,
)
ALPHA = Option("alpha", 0.05, "the level of every test", type=float, check="alpha")
CORRECTION = Option(
    "correction", "holm", "multiple-testing correction across a family of tests: " + ", ".join(_args.CORRECTIONS),
    type=str, check="correction",
)  # fmt: skip

#: Every command has these (``--out``'s default is ``tlgeom-<command>``).
COMMON = (MODEL, DEVICE, SEED, OUT, OVERWRITE, NO_PROGRESS)

#: The options that give an analysis its inputs, by kind of input (:attr:`Analysis.inputs`).
INPUTS: dict[str, tuple[Option, ...]] = {
    "text": (TEXT, TEXT_FILE),
    "texts": (
        TEXT.but(
            help="the text to test, each sentence one unit of inference (default: 12 bundled sentences, "
            "tlgeom.data.SENTENCES)"
        ),
        TEXT_FILE,
    ),
    "edit": (
        TEXT.but(
            help="the clean text: it is run as given and with --edited, and the deflection of --target's "
            "trajectory between the two runs is measured (give all three; default: a bundled homonym pair, "
            "see --pair)"
        ),
        TEXT_FILE.but(help="read the clean text (see --text) from this UTF-8 file"),
        Option("edited", None, "the edited text (with --text as the clean text)", type=str),
        Option("target", None, "the target word, present in both texts", type=str),
        Option(
            "occurrence",
            None,
            "which match of --target (0 = first) when a text contains it more than once; two indices: clean and edited",
            type=int,
            nargs="+",
            metavar="INDEX",
            minimum=0,
        ),
        Option(
            "pair",
            0,
            "index of the bundled homonym pair (deflect without --text; the report's eclipse sections)",
            type=int,
            minimum=0,
        ),
    ),
    "model": (),
}


# ------------------------------------------------------------------------------------------------ analyses


@dataclass(frozen=True)
class Claim:
    """An analysis's part of the claims table (``tlgeom claims``).

    Attributes:
        name: the ``claim`` column of its rows.
        part: the ``--parts`` name that runs it (several claims may share one).
        inputs: ``"corpus"`` (the corpus texts), ``"pairs"`` (each bundled minimal pair, one result per
            pair, ``item`` = the pair), or ``"model"`` (the weights alone).
        settings: the run's settings passed on as keywords (``seed``, ``alpha``, ``n_sims``, ``model_name``…).
        per_space: one result per ``--spaces`` value.
        max_texts: at most this many corpus texts (analyses that annotate every word).
        not_run: a TlgeomError becomes one "not run" row saying why (the model cannot run it), not a failure.
        units: the units of its rows in words (the claims README), when not the corpus texts.
        corpus: the ``corpus`` column of its rows, when not the corpus's label (``"weights"``).
    """

    name: str
    part: str
    inputs: str = "corpus"
    settings: tuple[str, ...] = ("seed", "alpha")
    per_space: bool = False
    max_texts: int | None = None
    not_run: bool = False
    units: str | None = None
    corpus: str | None = None


@dataclass(frozen=True)
class Analysis:
    """One analysis, declared once: what it runs, with which options, and the words around its result.

    Attributes:
        key: the file stem of its result (``key.png/.csv/.json``) and its report section's anchor.
        title: its report section's heading.
        run: ``"module:function"``, called as ``function(model, inputs, **options)`` (``function(model,
            **options)`` for ``inputs="model"``) and returning a :class:`tlgeom.Result`.
        inputs: ``"text"``, ``"texts"`` (units of inference), ``"edit"`` (a ContextEdit) or ``"model"``.
        options: its own options, passed to ``run`` by name.
        settings: shared options it also takes (``seed``, ``progress``).
        fixed: keywords always passed to ``run``.
        commands: the ``tlgeom`` commands that run it (``"report"`` included where it belongs).
        help, description: its command's one-line help and ``--help`` description.
        skip: a flag that, when set, skips it (``no_patch``).
        verdict: a method of the result that gives a one-line verdict, printed first.
        meaning, against: what its numbers mean, and what would count as evidence against the paper;
            ``{d_model}``, ``{n_units}`` and ``{result.<attribute>}`` are filled in.
        claim: its part of the claims table, or None.
    """

    key: str
    title: str
    run: str
    inputs: str
    options: tuple[Option, ...] = ()
    settings: tuple[str, ...] = ()
    fixed: Mapping[str, Any] = field(default_factory=dict)
    commands: tuple[str, ...] = ()
    help: str = ""
    description: str = ""
    skip: str | None = None
    verdict: str | None = None
    meaning: str = ""
    against: str = ""
    claim: Claim | None = None

    def __post_init__(self) -> None:
        if self.inputs not in INPUTS:
            raise ValueError(f"Analysis {self.key!r}: inputs={self.inputs!r} is not one of {sorted(INPUTS)}")

    @property
    def function(self) -> Callable[..., Any]:
        return resolve(self.run)

    def keywords(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The keywords ``run`` takes from ``values``: its options (but ``skip``), its settings and its claim's
        settings, where present."""
        names = [o.name for o in self.options if o.name != self.skip] + list(self.settings)
        names += list(self.claim.settings) if self.claim is not None else []
        return {**self.fixed, **{k: values[k] for k in names if k in values}}

    def execute(self, model: Any, inputs: Any = None, **values: Any) -> Any:
        """Run the analysis: ``run(model, inputs, **keywords)`` → its Result."""
        kwargs = self.keywords(values)
        if self.inputs == "model":
            return self.function(model, **kwargs)
        return self.function(model, inputs, **kwargs)

    def words(self, result: Any, *, d_model: int, n_units: int) -> tuple[str, str]:
        """``(meaning, against)`` with the run's numbers filled in."""
        ctx = {"d_model": d_model, "n_units": n_units, "result": result}
        return self.meaning.format(**ctx), self.against.format(**ctx)


# ------------------------------------------------------------------------------------------------ commands


@dataclass(frozen=True)
class Command:
    """One ``tlgeom`` subcommand.

    Attributes:
        name: ``tlgeom NAME``.
        help: one line in ``tlgeom --help``. description: the top of ``tlgeom NAME --help``.
        options: every option, in ``--help`` order (the :data:`COMMON` ones included).
        execute: ``"module:function"`` called with the parsed, validated arguments (``argparse.Namespace``)
            and returning the exit status.
        analyses: the analyses it runs, in order (the registry's keys), for commands that run analyses.
    """

    name: str
    help: str
    description: str
    options: tuple[Option, ...]
    execute: str
    analyses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [o.name for o in self.options]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"command {self.name!r} declares {twice} more than once")

    def option(self, name: str) -> Option:
        return next(o for o in self.options if o.name == name)

    def run(self, args: argparse.Namespace) -> int:
        validate(self.options, args)
        return int(resolve(self.execute)(args))
