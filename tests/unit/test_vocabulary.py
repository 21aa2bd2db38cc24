"""One argument vocabulary, true in fact (issue 27): the README promises that arguments mean the same
everywhere. This test enumerates the public functions that run a model and every command, and checks
the shared names and defaults, so that the vocabulary cannot drift again."""

from __future__ import annotations

import argparse
import inspect

import pytest

import tlgeom
from tlgeom import cli
from tlgeom.experiments.corpus import run_corpus
from tlgeom.experiments.language import curvature_vs_language
from tlgeom.experiments.readout import curvature_vs_readout, logit_lens


def _model_functions():
    out = {n: getattr(tlgeom, n) for n in tlgeom.__all__ if inspect.isfunction(getattr(tlgeom, n))}
    out.update(
        curvature_vs_language=curvature_vs_language,
        curvature_vs_readout=curvature_vs_readout,
        logit_lens=logit_lens,
        run_corpus=run_corpus,
    )
    return {n: f for n, f in out.items() if list(inspect.signature(f).parameters)[:1] == ["model"]}


MODEL_FUNCTIONS = _model_functions()
#: functions that run more than one forward pass in a loop, or simulations: they take ``progress``
LOOPS = {
    "curvature_test",
    "meaning_vs_control",
    "patch_attribution",
    "curvature_vs_language",
    "curvature_vs_readout",
    "run_corpus",
}


def test_the_enumeration_finds_the_model_functions():
    assert len(MODEL_FUNCTIONS) >= 15 and {"curvature_test", "deflection", "sphere_report"} <= set(MODEL_FUNCTIONS)


@pytest.mark.parametrize("name", sorted(MODEL_FUNCTIONS))
def test_model_functions_share_the_vocabulary(name):
    params = inspect.signature(MODEL_FUNCTIONS[name]).parameters
    # device wherever a model runs: None = the model's own device
    assert "device" in params and params["device"].default is None, name
    # progress: one default (off in the API; the commands turn it on), present where there is a loop
    if name in LOOPS:
        assert "progress" in params, name
    if "progress" in params:
        assert params["progress"].default is False, name
    # a family corrected for multiple comparisons names its correction (deflection's onset is corrected by
    # the max-statistic over points, which has no alternative: it has no family to name a method for)
    if "alpha" in params and name != "deflection":
        assert "correction" in params and params["correction"].default == "holm", name
    # controls, not n_controls (the old name only as a deprecated keyword defaulting to None)
    if "n_controls" in params:
        assert "controls" in params and params["n_controls"].default is None, name
    # randomness only through seed
    assert not {"rng", "random_state", "generator"} & set(params), name


def test_device_is_checked_against_the_model(tiny_gpt2):
    with pytest.raises(tlgeom.TlgeomError, match="device.*model's device"):
        tlgeom.record_trajectories(tiny_gpt2, "a text", device="meta")
    assert tlgeom.record_trajectories(tiny_gpt2, "a text", device="cpu").states.shape[0] == 1


def test_deprecated_n_controls_still_works(tiny_gpt2):
    from tlgeom.experiments.eclipse import ContextEdit

    pairs = [
        ContextEdit(f"the {a} sat on the mat .", f"the {b} sat on the mat .", "mat", info={"slot": {"pos": "noun"}})
        for a, b in [("cat", "dog"), ("boy", "girl"), ("man", "woman")]
    ]
    with pytest.warns(DeprecationWarning, match="controls="):
        old = tlgeom.meaning_vs_control(tiny_gpt2, pairs, n_controls=2, model_name="t")
    new = tlgeom.meaning_vs_control(tiny_gpt2, pairs, controls=2, model_name="t")
    assert old.tests().equals(new.tests())


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


COMMON = {"--model", "--text-file", "--device", "--seed", "--out", "--overwrite", "--no-progress"}


@pytest.mark.parametrize("command", sorted(_subcommands()))
def test_every_command_takes_the_common_options(command):
    """Every command takes the options the README lists for all of them (``claims`` reads a corpus:
    ``--text-file`` is its corpus file; ``--text`` is for the commands that read one text)."""
    p = _subcommands()[command]
    options = {o for a in p._actions for o in a.option_strings}
    missing = COMMON - options
    assert not missing, f"tlgeom {command} lacks {sorted(missing)}"
    if command != "claims":
        assert "--text" in options
    seed = next(a for a in p._actions if "--seed" in a.option_strings)
    assert seed.default == 0
