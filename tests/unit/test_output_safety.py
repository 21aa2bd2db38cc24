"""Nothing of the user's is ever lost (issue 27): every case ends in a correct result or a one-line
error naming the argument, and every file that was there before is byte-identical afterwards.

Table-driven: each case sets up a folder with the user's own files, runs one API call or command, and
checks (a) the exception / exit status and the one-line message, (b) the user's files, byte for byte.
Runs as root here, where permission bits do not stop writes: an unwritable place is a path under
``/proc`` (no one may create files there) or under a regular file.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

import tlgeom.experiments.corpus as C
from tlgeom import cli
from tlgeom._errors import TlgeomError
from tlgeom.data.corpora import Document, text_id
from tlgeom.report import claims

UNWRITABLE = "/proc/tlgeom-cannot-write-here"


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def _user_files(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "mydata.csv").write_text("my,own\n1,2\n")
    (home / "curvature_test.csv").write_text("the user's table\n")
    (home / "r.png").write_bytes(b"not tlgeom's")
    return home


@pytest.fixture
def report():
    g = torch.Generator().manual_seed(0)
    texts = [torch.randn(n, 6, 16, generator=g, dtype=torch.float64).cumsum(1) for n in (4, 5, 6)]
    return tlgeom_compare(texts)


def tlgeom_compare(texts):
    from tlgeom.experiments.curvature import compare_to_nulls

    return compare_to_nulls(texts, n_sims=19, seed=0, n_boot=0)


# ------------------------------------------------------------------------------------------- the API

SAVE_CASES = [
    # (what, directory relative to home (None: UNWRITABLE), name, overwrite, error substring or None)
    ("a folder holding the user's file of that name", ".", None, False, "curvature_test.csv"),
    ("a name that is the user's png", ".", "r", False, "r.png"),
    ("an unwritable place", None, None, False, "writable"),
    ("a path under a file", "mydata.csv/sub", None, False, "directory"),
    ("a new folder", "new", None, False, None),
    ("the user's file, with overwrite=True", ".", None, True, None),
]


@pytest.mark.parametrize("what, where, name, overwrite, error", SAVE_CASES, ids=[c[0] for c in SAVE_CASES])
def test_result_save(report, tmp_path, what, where, name, overwrite, error):
    home = _user_files(tmp_path)
    before = _snapshot(home)
    target = UNWRITABLE if where is None else home / where
    if error is not None:
        with pytest.raises(TlgeomError, match="directory") as exc:
            report.save(target, name, overwrite=overwrite)
        assert error in str(exc.value) and "\n" not in str(exc.value)
        assert _snapshot(home) == before
        assert not [p for p in tmp_path.rglob(".*partial*")]  # no staging folder left behind
        return
    paths = report.save(target, name, overwrite=overwrite)
    assert all(p.is_file() for p in paths.values())
    after = _snapshot(home)
    changed = {k for k in before if after.get(k) != before[k]}
    assert changed == ({"curvature_test.csv"} if overwrite else set())
    # a second save of the same result under another name keeps the first one's files
    again = report.save(target, "second", overwrite=overwrite)
    assert all(p.is_file() for p in paths.values()) and all(p.is_file() for p in again.values())


def test_run_corpus_failed_start_leaves_nothing(tiny_gpt2, tmp_path):
    out = tmp_path / "run"

    def docs():
        yield Document("a", "a first text")
        raise TlgeomError("--corpus: row 2: no 'text' field")

    with pytest.raises(TlgeomError, match="text"):
        C.run_corpus(tiny_gpt2, docs(), out, progress=False)
    assert not out.exists()
    with pytest.raises(TlgeomError, match="out.*writable"):
        C.run_corpus(tiny_gpt2, ["a text"], UNWRITABLE, progress=False)
    f = tmp_path / "file.txt"
    f.write_text("mine")
    with pytest.raises(TlgeomError, match="out"):
        C.run_corpus(tiny_gpt2, ["a text"], f / "sub", progress=False)
    assert f.read_text() == "mine"


def test_run_corpus_repeated_documents_get_ids_by_position(tiny_gpt2, tmp_path):
    with pytest.warns(UserWarning, match="2 document"):
        run = C.run_corpus(tiny_gpt2, ["one text", "two", "one text", "one text"], tmp_path / "r", progress=False)
    ids = sorted(C.read_rows(run.out).id)
    assert ids == sorted([text_id("one text"), text_id("two"), text_id("one text") + "@2", text_id("one text") + "@3"])


def test_run_corpus_refuses_another_source(tiny_gpt2, tmp_path):
    out = tmp_path / "r"
    C.run_corpus(tiny_gpt2, ["a text"], out, progress=False, source={"corpus": "lee"})
    before = _snapshot(out)
    with pytest.raises(TlgeomError, match="source"):
        C.run_corpus(tiny_gpt2, ["a text"], out, progress=False, source={"corpus": "enwiki"})
    assert _snapshot(out) == before


def test_batch_tokens_bounded_by_memory(tiny_gpt2, tmp_path):
    with pytest.raises(TlgeomError, match=r"batch_tokens.*GiB.*at most \d+") as exc:
        C.run_corpus(tiny_gpt2, ["a text"], tmp_path / "r", batch_tokens=10**12, progress=False)
    assert "\n" not in str(exc.value) and not (tmp_path / "r").exists()
    plan = C.Plan.of(
        C._compat.check_model(tiny_gpt2),
        {"model": "m", "norm": "rms", "eps": 1e-5},
        points="resid",
        space="raw",
        nulls=None,
        n_sims=0,
        seed=0,
        max_tokens=None,
        batch_tokens=4096,
    )
    C.check_batch_memory(tiny_gpt2, plan, 0, available=2**34)  # fits
    with pytest.raises(TlgeomError, match="at most"):
        C.check_batch_memory(tiny_gpt2, plan, 0, available=2**20)


def test_compare_to_nulls_on_states_that_never_move():
    from tlgeom.experiments.curvature import compare_to_nulls

    with pytest.raises(TlgeomError, match="zero length"):
        compare_to_nulls(torch.zeros(2, 4, 5, 8), n_sims=9)


# ------------------------------------------------------------------------------------------ the CLI


def _no_model(*_a, **_k):
    raise AssertionError("the model was loaded before the arguments were checked")


CLI_CASES = [
    # (what, argv with {home}/{tmp} placeholders, exit status, stderr substring)
    ("claims over the user's csv", ["claims", "--models", "gpt2", "--out", "{home}/mydata.csv"], 2, "mydata.csv"),
    ("claims into an unwritable place", ["claims", "--out", UNWRITABLE + "/claims.csv"], 2, "writable"),
    ("claims --out that is not a csv", ["claims", "--out", "{home}/table.txt"], 2, ".csv"),
    ("corpus into an unwritable place", ["corpus", "--corpus", "{tmp}/a.txt", "--out", UNWRITABLE], 2, "writable"),
    ("corpus into the user's folder", ["corpus", "--corpus", "{tmp}/a.txt", "--out", "{home}"], 2, "--out"),
    ("report over the user's csv", ["report", "--out", "{home}"], 2, "curvature_test.csv"),
    (
        "deflect --occurrence out of range",
        [
            "deflect",
            "--text",
            "a b a",
            "--edited",
            "a c a",
            "--target",
            "b",
            "--occurrence",
            "1",
            "2",
            "3",
            "--out",
            "{tmp}/d",
        ],
        2,
        "--occurrence",
    ),
]


@pytest.mark.parametrize("what, argv, status, needle", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_refuses_before_loading_and_loses_nothing(tmp_path, monkeypatch, capsys, what, argv, status, needle):
    home = _user_files(tmp_path)
    (tmp_path / "a.txt").write_text("A first paragraph of text.\n\nA second one.\n")
    before = _snapshot(home)
    monkeypatch.setattr(cli, "_load", _no_model)
    monkeypatch.setattr(claims, "load", _no_model)
    argv = [a.format(home=home, tmp=tmp_path) for a in argv] + ["--no-progress"] * (argv[0] != "claims")
    assert cli.main(argv) == status
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err
    assert _snapshot(home) == before


def test_cli_corpus_refuses_a_second_source_in_the_same_out(tiny_gpt2, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_load", lambda args: tiny_gpt2)
    (tmp_path / "a.txt").write_text("The same paragraph of text.\n\nAnother paragraph here.\n")
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "The same paragraph of text."}) + "\n")
    out = tmp_path / "run"
    assert cli.main(["corpus", "--corpus", str(tmp_path / "a.txt"), "--out", str(out), "--no-progress"]) == 0
    before = _snapshot(out)
    assert cli.main(["corpus", "--corpus", str(tmp_path / "a.jsonl"), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "source" in err and len(err.strip().splitlines()) == 1
    assert _snapshot(out) == before
    # the same source resumes (nothing new to do)
    assert cli.main(["corpus", "--corpus", str(tmp_path / "a.txt"), "--out", str(out), "--no-progress"]) == 0


def test_cli_deflect_occurrence_picks_a_repeated_target(tiny_cli_model, tmp_path, capsys):
    argv = ["deflect", "--text", "the bank and the bank .", "--edited", "the bank and the shore bank ."]
    assert cli.main([*argv, "--target", "bank", "--out", str(tmp_path / "a"), "--no-progress", "--no-patch"]) == 2
    assert "--occurrence" in capsys.readouterr().err
    ok = [*argv, "--target", "bank", "--occurrence", "1", "--out", str(tmp_path / "b"), "--no-progress", "--no-patch"]
    with pytest.warns(UserWarning, match="controls=2"):  # (too few controls for an onset: said, not refused)
        assert cli.main(ok + ["--controls", "2"]) == 0


@pytest.fixture
def tiny_cli_model(monkeypatch, tiny_gpt2):
    monkeypatch.setattr(cli, "_load", lambda args: tiny_gpt2)
    return tiny_gpt2


def test_claims_checks_a_new_deep_out_without_leaving_folders(tmp_path, monkeypatch, capsys):
    """The writability probe of a folder still to be made leaves nothing behind (here the run then stops
    at the model load, which is refused)."""
    monkeypatch.setattr(claims, "load", _no_model)
    deep = tmp_path / "a" / "b" / "claims.csv"
    with pytest.raises(AssertionError, match="model was loaded"):
        cli.main(["claims", "--models", "gpt2", "--out", str(deep), "--texts", "1", "--corpus", str(_corpus(tmp_path))])
    assert not (tmp_path / "a").exists() and not list(tmp_path.glob(".tlgeom-probe-*"))


def _corpus(tmp_path: Path) -> Path:
    f = tmp_path / "docs.txt"
    f.write_text(" ".join(["word"] * 60) + "\n")
    return f
