"""Each analysis declared once: the CLI, the report and the claims table are loops over the declarations."""

from __future__ import annotations

import dataclasses
import inspect
import json

import pytest

from tlgeom import _declare, cli
from tlgeom.experiments import analyses
from tlgeom.experiments.analyses import ANALYSES


@pytest.fixture
def fresh_commands():
    cli.commands.cache_clear()
    yield
    cli.commands.cache_clear()


def _parsers():
    import argparse

    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_the_registry_resolves_and_its_options_are_the_functions_keywords():
    """Every declared analysis names a function that exists and takes each of its options, settings and
    fixed keywords by name: a declaration cannot drift from its experiment."""
    keys = [a.key for a in ANALYSES]
    assert len(keys) == len(set(keys))
    for a in ANALYSES:
        params = inspect.signature(a.function).parameters
        names = [o.name for o in a.options if o.name != a.skip] + list(a.settings) + list(a.fixed)
        names += list(a.claim.settings) if a.claim else []
        missing = [n for n in names if n not in params]
        assert not missing, f"{a.run} takes no {missing}"


def test_the_cli_is_built_from_the_declarations():
    """Each analysis's options are on every command that runs it, with the declared default; every command
    has the common options; the report runs every analysis that names it; claims' --parts are the claims."""
    parsers = _parsers()
    for name, command in cli.commands().items():
        flags = {s: a for a in parsers[name]._actions for s in a.option_strings}
        for o in _declare.COMMON:
            assert o.flag_name in flags, (name, o.flag_name)
        for key in command.analyses:
            a = analyses.analysis(key)
            assert name in a.commands
            for o in a.options:
                assert o.flag_name in flags, (name, o.flag_name)
                if name != "report":
                    assert flags[o.flag_name].default == o.default, (name, o.flag_name)
    assert cli.commands()["report"].analyses == tuple(a.key for a in ANALYSES if "report" in a.commands)
    parts = next(a for a in parsers["claims"]._actions if "--parts" in a.option_strings)
    assert tuple(parts.choices) == analyses.claim_parts()
    assert analyses.claim_parts() == (
        "curvature",
        "eclipse",
        "heads",
        "straightening",
        "gibberish",
        "entropy",
        "language",
        "readout",
    )


def test_n_sims_is_declared_once_with_a_documented_default_per_use():
    """One --n-sims declaration; each command that changes its default says why in --help."""
    parsers = _parsers()
    defaults = {}
    for name in ("curvature-test", "report", "corpus", "claims"):
        action = next(a for a in parsers[name]._actions if "--n-sims" in a.option_strings)
        defaults[name] = action.default
        assert f"(default {action.default}" in action.help
        option = cli.commands()[name].option("n_sims")
        assert option.help.startswith("simulations per") and option.type is int
        if action.default != _declare.N_SIMS.default:
            assert option.why, name
    assert defaults == {"curvature-test": 999, "report": 399, "corpus": 0, "claims": 249}


def test_a_command_declaring_an_option_twice_is_refused():
    with pytest.raises(ValueError, match="more than once"):
        _declare.Command("x", "", "", (_declare.SEED, _declare.SEED.but(default=1)), "tlgeom.cli:run_analyses")


def test_options_validate_once_at_the_entry():
    with pytest.raises(_declare.TlgeomError, match=r"--n-sims=0: expected an integer >= 1"):
        _declare.N_SIMS.validate(0)
    with pytest.raises(_declare.TlgeomError, match=r"--seed=-1"):
        _declare.SEED.validate(-1)
    assert _declare.N_SIMS.but(minimum=0).validate(0) == 0


def test_adding_an_analysis_is_one_declaration(monkeypatch, tiny_gpt2, tmp_path, capsys, fresh_commands):
    """A new declaration alone gives a command with the common options, its own options, a report section,
    and output through the same staged writer: nothing in cli.py or report/ changes."""
    sphere = analyses.analysis("sphere")
    extra = dataclasses.replace(
        sphere,
        key="sphere_again",
        title="The hypersphere, once more",
        commands=("sphere-again", "report"),
        help="a second hypersphere analysis",
        options=(_declare.Option("flavour", "plain", "an option of its own", type=str, choices=("plain",)),),
        run="tlgeom.experiments.sphere:sphere_report",
    )
    monkeypatch.setattr(analyses, "ANALYSES", (*ANALYSES, extra))
    # the option is not the function's keyword: the declaration says which keywords it passes
    monkeypatch.setattr(_declare.Analysis, "keywords", lambda self, values: {})
    monkeypatch.setattr(cli, "_load", lambda args: tiny_gpt2)
    assert "sphere-again" in cli.commands() and "sphere_again" in cli.commands()["report"].analyses
    with pytest.raises(SystemExit):
        cli.main(["sphere-again", "--help"])
    help_text = capsys.readouterr().out
    assert all(o.flag_name in help_text for o in _declare.COMMON) and "--flavour" in help_text
    out = tmp_path / "o"
    assert cli.main(["sphere-again", "--text", "the cat sat on the mat .", "--out", str(out), "--no-progress"]) == 0
    assert sorted(p.name for p in out.glob("sphere_again.*")) == [
        "sphere_again.csv",
        "sphere_again.json",
        "sphere_again.png",
    ]
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["flavour"] == "plain" and "sphere_again" in doc["sections"]


def test_normalized_means_one_thing_on_every_path(tiny_gpt2):
    """``space="normalized"``: what the norm reads, n(x), put exactly on the sphere of radius √d, by one function
    (to_space) on every path; the norm has one vocabulary (any spelling maps to "rms" / "layernorm")."""
    import math

    import torch

    from tlgeom.experiments import corpus_core
    from tlgeom.experiments.curvature import _prepare
    from tlgeom.geometry import sphere
    from tlgeom.geometry.curvature import norm_kind, normalize_states, to_space, turning_angles
    from tlgeom.models import arch
    from tlgeom.models.streaming import NormalizedTurningAngles, stream

    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 4, 16, generator=g, dtype=torch.float64) * 1e-2  # small states: eps matters
    y = to_space(x, "normalized", "rms", 1e-5)
    torch.testing.assert_close(
        torch.linalg.vector_norm(y, dim=-1), torch.full((5, 4), math.sqrt(16.0), dtype=torch.float64)
    )
    n = normalize_states(x, "rms", 1e-5)
    assert not torch.allclose(torch.linalg.vector_norm(n, dim=-1), torch.full((5, 4), 4.0, dtype=torch.float64))
    torch.testing.assert_close(y / y.norm(dim=-1, keepdim=True), n / n.norm(dim=-1, keepdim=True))
    torch.testing.assert_close(_prepare([x], "normalized", "rms", 1e-5)[0], y)
    torch.testing.assert_close(corpus_core._on_sphere(x, "rms", 1e-5), y)
    torch.testing.assert_close(to_space(x, "raw"), x)
    for spelling in ("rms", "RMSNorm", "rmsnorm(1+w)"):
        assert norm_kind(spelling) == "rms"
    for spelling in ("layernorm", "LayerNorm", "layernorm(1+w)"):
        assert norm_kind(spelling) == "layernorm"
    torch.testing.assert_close(sphere.normalize(x, "LayerNorm", 1e-5), normalize_states(x, "layernorm", 1e-5))
    torch.testing.assert_close(arch.normalized(x, "RMSNorm", 1e-5), normalize_states(x, "rms", 1e-5))
    with pytest.raises(_declare.TlgeomError, match="norm='batchnorm'"):
        norm_kind("batchnorm")
    # the streaming metric and the geometry function on the recorded states agree
    from tlgeom.models.trajectory import record_trajectories

    metric = NormalizedTurningAngles("rms", 1e-5)
    out = stream(tiny_gpt2, "the cat sat on the mat", metrics=[metric])
    states = record_trajectories(tiny_gpt2, "the cat sat on the mat").states[0].double()
    expected = turning_angles(to_space(states, "normalized", "rms", 1e-5))
    torch.testing.assert_close(out[metric.name][0].double(), expected, rtol=1e-5, atol=1e-6)
