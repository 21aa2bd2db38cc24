"""The command line and the report writers, in-process on tiny offline models."""

from __future__ import annotations

import json
import math

import pytest
import torch

from tlgeom import cli
from tlgeom import report as R
from tlgeom.models import check_device, pick_model

TINY_TEXT = "the cat sat on the mat . the dog ran to the river bank and saw a big red ball ."


@pytest.fixture
def tiny_cli(monkeypatch, tiny_gpt2):
    """``tlgeom`` commands in-process with the tiny GPT-2 in place of a named model."""
    monkeypatch.setattr(cli, "_load", lambda args: tiny_gpt2)

    def run(*argv):
        return cli.main(list(argv) + ["--no-progress"])

    return run


def _pngs(out):
    return sorted(p.name for p in out.glob("*.png"))


def test_landscape_command_writes_figure_table_json(tiny_cli, tmp_path, capsys):
    assert tiny_cli("landscape", "--text", TINY_TEXT, "--out", str(tmp_path)) == 0
    assert _pngs(tmp_path) == ["landscape.png"]
    doc = json.loads((tmp_path / "results.json").read_text())
    res = doc["sections"]["landscape"]["results"]
    assert res["n_vertices"] == 1  # 2 layers: 3 points, 1 vertex
    assert 0 <= res["median_angle_deg"] <= 180
    # the result's own save(): its JSON holds the same headline the section reports
    own = json.loads((tmp_path / "landscape.json").read_text())
    assert own["result"] == "Landscape" and own["headline"] == res
    assert "curvature landscape" in capsys.readouterr().out
    manifest = json.loads((tmp_path / R.MANIFEST).read_text())["files"]
    assert set(manifest) == {"landscape.png", "landscape.csv", "landscape.json", "results.json"}


def test_curvature_test_command(tiny_cli, tmp_path, capsys):
    assert tiny_cli("curvature-test", "--text", TINY_TEXT, "--n-sims", "19", "--seed", "3", "--out", str(tmp_path)) == 0
    doc = json.loads((tmp_path / "results.json").read_text())
    res = doc["sections"]["curvature_test"]["results"]
    assert res["n_sims"] == 19 and res["seed"] == 3
    assert res["verdict"].startswith("curvature verdict")
    assert doc["meta"]["seed"] == 3
    out = capsys.readouterr().out
    assert "curvature verdict" in out and "[rotation]" in out and "[untrained]" in out


def test_deflect_command_with_own_edit(tiny_cli, tmp_path):
    assert (
        tiny_cli(
            "deflect",
            "--text",
            "the cat sat on the river bank .",
            "--edited",
            "the cat sat on the money bank .",
            "--target",
            "bank",
            "--controls",
            "0",
            "--out",
            str(tmp_path),
        )
        == 0
    )
    assert _pngs(tmp_path) == ["deflection.png", "patching.png"]
    sections = json.loads((tmp_path / "results.json").read_text())["sections"]
    res = sections["deflection"]["results"]
    assert res["target"].strip() == "bank" and res["final_distance"] > 0
    assert json.loads((tmp_path / "results.json").read_text())["meta"]["controls"] == 0
    assert sections["patching"]["results"]["n_run"] <= sections["patching"]["results"]["n_cells"]


def test_deflect_identical_texts_is_zero(tiny_cli, tmp_path):
    text = "the cat sat on the river bank ."
    assert (
        tiny_cli(
            "deflect",
            "--text",
            text,
            "--edited",
            text,
            "--target",
            "bank",
            "--controls",
            "0",
            "--no-patch",
            "--out",
            str(tmp_path),
        )
        == 0
    )
    res = json.loads((tmp_path / "results.json").read_text())["sections"]["deflection"]["results"]
    assert res["final_distance"] == 0.0


def test_report_html_embeds_every_figure(tiny_cli, tmp_path, capsys):
    text_file = tmp_path / "in.txt"
    text_file.write_text(TINY_TEXT + "\n", encoding="utf-8")
    out = tmp_path / "rep"
    assert (
        tiny_cli("report", "--text-file", str(text_file), "--n-sims", "19", "--controls", "19", "--out", str(out)) == 0
    )
    html = (out / "report.html").read_text(encoding="utf-8")
    figures = _pngs(out)
    assert figures == ["curvature_test.png", "deflection.png", "landscape.png", "patching.png", "sphere.png"]
    assert html.count('<img src="data:image/png;base64,') == len(figures)
    assert "http://" not in html and "https://" not in html and "<script" not in html  # self-contained
    doc = json.loads((out / "results.json").read_text())
    assert set(doc["sections"]) == {"landscape", "curvature_test", "sphere", "deflection", "patching"}
    assert doc["meta"]["text"] == TINY_TEXT
    assert "curvature verdict" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["landscape", "--text", "   "], "--text="),
        (["landscape", "--text-file", "/nonexistent/tlgeom.txt"], "--text-file='/nonexistent/tlgeom.txt'"),
        (["curvature-test", "--n-sims", "0"], "--n-sims=0"),
        (["deflect", "--text", "the cat sat"], "--edited=None"),
        (["deflect", "--pair", "999"], "pair=999"),
        (["report", "--controls", "-1"], "--controls=-1"),
    ],
)
def test_bad_input_is_one_line_exit_2(tiny_cli, tmp_path, capsys, argv, needle):
    assert tiny_cli(*argv, "--out", str(tmp_path / "o")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_empty_text_file(tiny_cli, tmp_path, capsys):
    f = tmp_path / "empty.txt"
    f.write_text("  \n", encoding="utf-8")
    assert tiny_cli("sphere", "--text-file", str(f), "--out", str(tmp_path)) == 2
    assert "empty" in capsys.readouterr().err


def test_out_is_a_file(tiny_cli, tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert tiny_cli("sphere", "--out", str(f)) == 2
    assert "--out=" in capsys.readouterr().err
    assert f.read_text() == "x"  # nothing lost


def _no_model(args):
    raise AssertionError("the model was loaded before every argument was checked")


@pytest.mark.parametrize("cmd", ["deflect", "report", "landscape"])
def test_bad_seed_is_refused_before_loading_the_model(monkeypatch, tmp_path, capsys, cmd):
    monkeypatch.setattr(cli, "_load", _no_model)
    for seed in ("-1", str(2**63)):
        assert cli.main([cmd, "--seed", seed, "--out", str(tmp_path / "o"), "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--seed={seed}" in err and "2**63" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_a_failure_leaves_no_partial_output(tiny_cli, monkeypatch, tmp_path, capsys):
    def boom(*a, **k):
        raise cli.TlgeomError("sphere failed")

    import tlgeom.experiments.sphere

    monkeypatch.setattr(tlgeom.experiments.sphere, "sphere_report", boom)
    out = tmp_path / "rep"
    assert tiny_cli("report", "--text", TINY_TEXT, "--n-sims", "9", "--controls", "0", "--out", str(out)) == 2
    assert "sphere failed" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # neither --out nor its staging directory
    # into an existing directory: its files are untouched, nothing is added
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert tiny_cli("report", "--text", TINY_TEXT, "--n-sims", "9", "--controls", "0", "--out", str(out)) == 2
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and sorted(tmp_path.iterdir()) == [out]


def test_never_overwrites_a_file_tlgeom_did_not_write(tiny_cli, tmp_path, capsys):
    (tmp_path / "landscape.csv").write_text("my own data\n")
    (tmp_path / "notes.txt").write_text("mine")
    assert tiny_cli("landscape", "--text", TINY_TEXT, "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "landscape.csv" in err and "--overwrite" in err
    assert (tmp_path / "landscape.csv").read_text() == "my own data\n" and not (tmp_path / "landscape.png").exists()
    assert tiny_cli("landscape", "--text", TINY_TEXT, "--out", str(tmp_path), "--overwrite") == 0
    assert (tmp_path / "landscape.csv").read_text().startswith("pos,")
    assert (tmp_path / "notes.txt").read_text() == "mine"  # a file of another name is never touched
    # tlgeom's own files (in the manifest) are replaced without --overwrite
    assert tiny_cli("landscape", "--text", TINY_TEXT, "--out", str(tmp_path)) == 0


def test_rerun_replaces_its_own_stale_files(tiny_cli, tmp_path):
    args = ["--text", "the cat sat on the river bank .", "--edited", "the cat sat on the money bank ."]
    args += ["--target", "bank", "--controls", "0", "--out", str(tmp_path)]
    assert tiny_cli("deflect", *args) == 0 and (tmp_path / "patching.png").exists()
    assert tiny_cli("landscape", "--text", TINY_TEXT, "--out", str(tmp_path)) == 0  # another command, same dir
    assert tiny_cli("deflect", *args, "--no-patch") == 0
    assert not (tmp_path / "patching.png").exists() and (tmp_path / "landscape.png").exists()
    files = json.loads((tmp_path / R.MANIFEST).read_text())["files"]
    assert files["landscape.png"] == "tlgeom landscape" and "patching.png" not in files


def test_unwritable_out_is_one_line(tiny_cli, capsys):
    assert tiny_cli("sphere", "--text", TINY_TEXT, "--out", "/proc/x") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tlgeom sphere: error: --out='/proc/x'") and "Traceback" not in err


def test_default_out_differs_per_command():
    parser = cli.build_parser()
    outs = {cmd: parser.parse_args([cmd]).out for cmd in ("landscape", "curvature-test", "deflect", "sphere", "report")}
    assert outs["report"] == "tlgeom-report" and outs["landscape"] == "tlgeom-landscape"
    assert len(set(outs.values())) == len(outs)


def test_deflect_help_says_what_text_is(capsys):
    with pytest.raises(SystemExit):
        cli.main(["deflect", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "the text to analyse" not in out and "the clean text" in out and "--edited" in out


@pytest.mark.parametrize(
    "argv",
    [
        ["nope"],
        ["landscape", "--space", "curved"],
        ["landscape", "--seed", "x"],
        ["landscape", "--text", "a", "--text-file", "b"],
    ],
)
def test_usage_errors_are_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tlgeom") and "--help" in err


def test_unknown_model_offline_is_clear(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.main(["sphere", "--model", "no-such-model-xyz", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--model='no-such-model-xyz'" in err and "smollm2-135m" in err and err.count("\n") == 1


def test_help_for_each_command(capsys):
    for cmd in ("landscape", "curvature-test", "deflect", "sphere", "report"):
        with pytest.raises(SystemExit) as exc:
            cli.main([cmd, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        for opt in ("--model", "--text", "--text-file", "--device", "--seed", "--out"):
            assert opt in out, (cmd, opt)


def test_device_and_pick_model(monkeypatch):
    assert check_device(None) is None and check_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device='cuda'"):
            check_device("cuda")
    with pytest.raises(ValueError, match="device='warp-drive'"):
        check_device("warp-drive")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert pick_model("gpt2", fallback="smollm2-135m") == "smollm2-135m"
    assert pick_model("minilm-l6") == "minilm-l6"  # a bundled name needs no hub


def test_jsonable_and_verdict_line():
    assert R._jsonable({"a": float("nan"), "b": [float("inf"), -math.inf], "c": torch.tensor([1.5])}) == {
        "a": None,
        "b": ["inf", "-inf"],
        "c": [1.5],
    }

    import pandas as pd

    class Fake:
        alpha, n_sims, n_texts, correction = 0.05, 999, 5, "holm"

        def tests(self):
            return pd.DataFrame(
                {
                    "null": ["rotation", "rotation", "shuffle"],
                    "statistic": ["mean_angle", "log_ltc", "sharp_flat"],
                    "informative": [True, True, False],
                    "reject": [True, False, False],
                }
            )

    line = R.verdict_line(Fake())
    assert "rejected 1/2 (rotation·mean_angle)" in line and "1 comparison(s) could not reject at any data" in line
    assert "Caution" not in line and "against" not in line

    class Against(Fake):
        def tests(self):
            t = Fake.tests(self)
            t["against"] = [False, True, False]  # log_ltc significantly on the opposite side of its claim
            return t

    assert "Evidence against the claim (significant on the opposite side): rotation·log_ltc" in R.verdict_line(
        Against()
    )


def test_unknown_model_and_device_errors_come_from_load_model(monkeypatch):
    """load_model itself refuses an unknown name at once when the hub is unreachable (no client retries)."""
    import tlgeom

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(tlgeom.TlgeomError, match="name='no-such-model-xyz'.*hub is not reachable"):
        tlgeom.load_model("no-such-model-xyz")
    if not torch.cuda.is_available():
        with pytest.raises(tlgeom.TlgeomError, match="device='cuda'"):
            tlgeom.load_model("smollm2-135m", device="cuda")


def test_cli_names_its_own_options(monkeypatch, capsys, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    assert cli.main(["sphere", "--device", "cuda", "--out", str(tmp_path), "--no-progress"]) == 2
    assert capsys.readouterr().err.startswith("tlgeom sphere: error: --device='cuda'")


#: Bad input every command shares, and the text of the one-line error that names it.
_COMMON_BAD = [
    (["--seed", "-1"], "--seed=-1"),
    (["--seed", str(2**70)], "--seed="),
    (["--text", "   "], "--text="),
    (["--text-file", "/nonexistent/tlgeom.txt"], "--text-file="),
    (["--no-such-option"], "--no-such-option"),
]


@pytest.mark.parametrize("argv, needle", _COMMON_BAD, ids=[a[0] for a, _ in _COMMON_BAD])
@pytest.mark.parametrize("command", sorted(c.name for c in cli.commands().values() if c.analyses))
def test_every_command_refuses_bad_input_in_one_line(tiny_cli, tmp_path, capsys, command, argv, needle):
    """The bad-input table over every CLI command: exit status 2, one line on stderr naming the option,
    no traceback, and nothing written."""
    out = tmp_path / "o"
    try:
        status = tiny_cli(command, *argv, "--out", str(out))
    except SystemExit as exc:  # argparse's own usage errors exit (in one line too)
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--texts", "0"], "--texts=0"),
        (["--n-sims", "0"], "--n-sims=0"),
        (["--max-tokens", "1"], "--max-tokens=1"),
        (["--alpha", "2"], "--alpha=2.0"),
        (["--correction", "sidak"], "--correction='sidak'"),
        (["--seed", "-1"], "--seed=-1"),
        (["--corpus", "/nonexistent/tlgeom.jsonl"], "--corpus='/nonexistent/tlgeom.jsonl'"),
        (["--models", "gpt2", "gpt2"], "--models="),
        (["--parts", "nonsense"], "--parts"),
        (["--no-such-option"], "--no-such-option"),
    ],
)
def test_claims_command_refuses_bad_input_before_loading(monkeypatch, tmp_path, capsys, argv, needle):
    """``tlgeom claims``: every option is checked before a model loads; one line, exit 2, nothing written."""
    import tlgeom.models.load as load_mod

    monkeypatch.setattr(load_mod, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    out = tmp_path / "claims.csv"
    try:
        status = cli.main(["claims", *argv, "--out", str(out)])
    except SystemExit as exc:  # argparse's own usage errors exit (in one line too)
        status = exc.code
    assert status == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err and err.startswith("tlgeom claims")
    assert not out.exists()


@pytest.mark.parametrize("argv", [["--help"], *[[c, "--help"] for c in cli.commands()]])
def test_help_prints_without_importing_torch(argv):
    """`tlgeom --help` and `tlgeom COMMAND --help` answer at once: neither torch nor the analyses load."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom tlgeom.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code\nheavy = [m for m in ('torch', 'transformer_lens', 'matplotlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True).stdout
    assert "usage: " in out and "HEAVY []" in out, out[-300:]


@pytest.mark.parametrize("command", ["straightening", "gibberish", "entropy"])
def test_the_declared_claim_commands_run(tiny_cli, tmp_path, capsys, command):
    """Commands that exist only because their analyses were declared: on the 12 bundled sentences, they
    write their result files and results.json, and print the summary."""
    assert tiny_cli(command, "--out", str(tmp_path)) == 0
    key = command
    assert {f"{key}.png", f"{key}.csv", f"{key}.json", "results.json"} <= {p.name for p in tmp_path.iterdir()}
    doc = json.loads((tmp_path / "results.json").read_text())
    assert key in doc["sections"] and doc["meta"]["command"] == f"tlgeom {command}"
    assert f"tlgeom {command}" in capsys.readouterr().out
