"""The newcomer's path: ``tlgeom report`` on the default model, and the CLI's bad-input contract."""

from __future__ import annotations

import json

import pytest

FIGURES = ["curvature_test.png", "deflection.png", "landscape.png", "patching.png", "sphere.png"]


def test_demo_prints_verdict_and_writes_every_file(demo_report):
    out, proc = demo_report
    stdout = proc.stdout
    assert "curvature verdict (α = 0.05, holm over " in stdout
    assert sorted(p.name for p in out.glob("*.png")) == FIGURES
    for name in (
        "landscape.csv",
        "curvature_test.csv",
        "sphere.csv",
        "deflection.csv",
        "patching.csv",
        "results.json",
        "report.html",
        "landscape.json",  # each Result's own save(): headline + summary
        "sphere.json",
        ".tlgeom-manifest.json",
    ):
        assert (out / name).stat().st_size > 0, name
    assert not list(out.parent.glob(f".{out.name}.partial-*"))  # the staging directory was moved into place
    manifest = json.loads((out / ".tlgeom-manifest.json").read_text(encoding="utf-8"))["files"]
    assert set(manifest) == {p.name for p in out.iterdir()} - {".tlgeom-manifest.json"}
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["meta"]["model"]["name"] == "smollm2-135m" and doc["meta"]["n_sims"] == 399
    land = doc["sections"]["landscape"]["results"]
    assert land["n_tokens"] > 150 and land["n_vertices"] == 29
    # the printed verdict is the one stored, and it matches the stored per-null verdicts
    ct = doc["sections"]["curvature_test"]["results"]
    assert ct["verdict"] in stdout
    # the demo tests enough texts with enough simulations that every test of its family can reject
    assert "could not reject at any data" not in ct["verdict"] and "12 text(s)" in ct["verdict"]
    assert ct["verdicts"] and all(f"[{null}]" in stdout for null in ct["verdicts"])  # every null's summary printed
    assert "[untrained]" in stdout
    n_reject = sum(bool(r) for v in ct["verdicts"].values() for r in v.values())
    assert f"rejected {n_reject}/" in ct["verdict"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('<img src="data:image/png;base64,') == len(FIGURES)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["landscape", "--text-file", "/nonexistent/words.txt"], "--text-file='/nonexistent/words.txt'"),
        (["landscape", "--model", "definitely-not-a-model"], "--model='definitely-not-a-model'"),
        (["landscape", "--text", ""], "--text=''"),
        (["report", "--seed", "-1"], "--seed=-1"),
        (["deflect", "--seed", "-1"], "--seed=-1"),
        (["sphere", "--out", "/proc/x"], "--out='/proc/x'"),
    ],
)
def test_bad_input_one_line_exit_2_no_traceback(tlgeom_cli, tmp_path, argv, needle):
    if "--out" not in argv:
        argv = [*argv, "--out", str(tmp_path / "o")]
    proc = tlgeom_cli(*argv, "--no-progress", timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert needle in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_report_on_the_encoder(tlgeom_cli, tmp_path):
    """The same report on a post-LN BERT encoder (bidirectional: patching runs cells after the target too)."""
    out = tmp_path / "minilm"
    proc = tlgeom_cli(
        "report", "--model", "minilm-l6", "--n-sims", "99", "--controls", "4", "--no-progress", "--out", str(out)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in out.glob("*.png")) == FIGURES
    doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert doc["meta"]["model"]["n_layers"] == 6 and doc["meta"]["model"]["d_model"] == 384
    assert doc["sections"]["sphere"]["results"]["kind"] == "LayerNorm"
    assert doc["sections"]["sphere"]["results"]["ones_cos_max"] < 1e-6  # LayerNorm's hyperplane
    assert doc["sections"]["deflection"]["results"]["n_controls"] == 4
