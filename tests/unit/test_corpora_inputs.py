"""tlgeom.data.corpora.iter_corpus: Parquet files and directories, Hugging Face-like datasets, dict and str
iterables, JSONL id fields, per-line text; laziness; stable ids; ``tlgeom corpus`` on a Parquet file."""

from __future__ import annotations

import itertools
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tlgeom._errors import TlgeomError
from tlgeom.data.corpora import Document, iter_corpus, load_corpus, text_id

TEXTS = ["the cat sat on the mat", "rain  fell\nover quiet hills", "   ", "rivers ran to the sea", "one more line"]


def _parquet(path, texts=TEXTS, ids=None, text_col="text", row_group_size=2):
    cols = {text_col: texts, "n": list(range(len(texts)))}
    if ids is not None:
        cols["id"] = ids
    pq.write_table(pa.table(cols), path, row_group_size=row_group_size)
    return path


def _expected(texts=TEXTS, ids=None):
    out = []
    for i, t in enumerate(texts):
        doc = " ".join(t.split())
        if doc:
            out.append(Document(text_id(doc) if ids is None or ids[i] is None else str(ids[i]), doc))
    return out


def test_parquet_file_row_groups_ids_given_or_hashed(tmp_path):
    ids = ["a", 7, None, "d", "e"]
    f = _parquet(tmp_path / "c.parquet", ids=[None if i is None else str(i) for i in ids])
    assert pq.ParquetFile(f).num_row_groups == 3  # the reader crosses row-group boundaries
    docs = list(iter_corpus(f))
    assert docs == _expected(ids=ids)
    assert docs[1] == Document("7", "rain fell over quiet hills")  # whitespace collapsed, as for JSONL
    # no id column: hashed ids, the same as for the bare strings and for load_corpus
    g = _parquet(tmp_path / "h.parquet")
    assert list(iter_corpus(g)) == list(iter_corpus(TEXTS)) == load_corpus(g) == _expected()


def test_parquet_is_read_batch_by_batch_never_whole(tmp_path, monkeypatch):
    f = _parquet(tmp_path / "c.parquet", row_group_size=1)

    def refuse(*args, **kwargs):
        raise AssertionError("the whole file was read")

    monkeypatch.setattr(pq.ParquetFile, "read", refuse)
    monkeypatch.setattr(pq, "read_table", refuse)
    read = []
    real = pq.ParquetFile.iter_batches

    def spy(self, *args, **kwargs):
        read.append(kwargs.get("columns"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    assert [d.text for d in iter_corpus(f)] == [d.text for d in _expected()]
    assert read == [["text"]]  # only the text column (no id column in this file)


def test_parquet_directory_in_sorted_path_order(tmp_path):
    d = tmp_path / "parts"
    (d / "sub").mkdir(parents=True)
    _parquet(d / "b.parquet", texts=["second file text"])
    _parquet(d / "a.parquet", texts=["first file text", "first file again"])
    _parquet(d / "sub" / "c.parquet", texts=["nested file text"])
    (d / "notes.txt").write_text("not a parquet file")
    assert [x.text for x in iter_corpus(d)] == [
        "first file text",
        "first file again",
        "second file text",
        "nested file text",
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(TlgeomError, match="has none"):
        iter_corpus(tmp_path / "empty")


def test_missing_text_column_names_it_and_the_columns(tmp_path):
    f = _parquet(tmp_path / "c.parquet", text_col="body")
    with pytest.raises(TlgeomError, match="^text_field='text'") as err:
        iter_corpus(f)  # checked when called, before anything is iterated
    assert "'body', 'n'" in str(err.value) and str(f) in str(err.value)
    assert [x.text for x in iter_corpus(f, text_field="body")] == [x.text for x in _expected()]
    # a directory: every file's footer is checked up front
    d = tmp_path / "d"
    d.mkdir()
    _parquet(d / "a.parquet")
    _parquet(d / "b.parquet", text_col="body")
    with pytest.raises(TlgeomError, match="b.parquet"):
        iter_corpus(d)
    # a non-string text column
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "ints.parquet")
    with pytest.raises(TlgeomError, match="column of strings"):
        list(iter_corpus(tmp_path / "ints.parquet"))


def test_jsonl_id_field(tmp_path):
    f = tmp_path / "d.jsonl"
    rows = [{"key": "k1", "id": "ignored", "body": "alpha beta"}, {"body": "gamma"}, {"key": 3, "body": " "}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    assert list(iter_corpus(f, text_field="body", id_field="key")) == [
        Document("k1", "alpha beta"),
        Document(text_id("gamma"), "gamma"),
    ]
    assert next(iter_corpus(f, text_field="body")).id == "ignored"  # default id_field "id"


def test_per_line_text_and_per_line_elsewhere_refused(tmp_path):
    f = tmp_path / "d.txt"
    f.write_text("first line\nsecond  line\n\n  \nthird\r\nfourth\n", encoding="utf-8")
    assert [d.text for d in iter_corpus(f, per_line=True)] == ["first line", "second line", "third", "fourth"]
    assert [d.text for d in iter_corpus(f)] == ["first line second line", "third fourth"]
    with pytest.raises(TlgeomError, match="^per_line=True"):
        iter_corpus(_parquet(tmp_path / "c.parquet"), per_line=True)
    with pytest.raises(TlgeomError, match="^per_line=True"):
        iter_corpus(["a text"], per_line=True)


def test_dict_str_document_iterables():
    items = [{"text": "from a dict", "id": 5}, "from  a string", Document("given", "a  document"), {"text": ""}]
    assert list(iter_corpus(items)) == [
        Document("5", "from a dict"),
        Document(text_id("from a string"), "from a string"),
        Document("given", "a  document"),  # a Document passes through as it is
    ]
    assert list(iter_corpus([{"body": "x", "key": "k"}], text_field="body", id_field="key")) == [Document("k", "x")]
    with pytest.raises(TlgeomError, match="item 1"):
        list(iter_corpus([{"text": "ok"}, {"title": "no text"}]))
    with pytest.raises(TlgeomError, match=r"^source\[1\]='int'"):
        list(iter_corpus(["ok", 3]))
    for bad in (b"bytes", 3.0, None):
        with pytest.raises(TlgeomError, match="^source="):
            iter_corpus(bad)
    with pytest.raises(TlgeomError, match="or the path"):
        iter_corpus("no-such-file.parquet")


class FakeDataset:
    """A stand-in for ``datasets.Dataset``: ``column_names``, ``select_columns``, rows as dicts."""

    def __init__(self, rows: list[dict], selected: list[str] | None = None):
        self.rows, self.selected = rows, selected

    @property
    def column_names(self) -> list[str]:
        return self.selected or list(self.rows[0])

    def select_columns(self, names: list[str]) -> FakeDataset:
        return FakeDataset(self.rows, list(names))

    def __iter__(self):
        for row in self.rows:
            yield {k: v for k, v in row.items() if self.selected is None or k in self.selected}


class FakeDatasetDict(dict):
    @property
    def column_names(self) -> dict[str, list[str]]:
        return {split: ds.column_names for split, ds in self.items()}


def test_datasets_like_objects():
    rows = [{"image": object(), "content": "a  b c", "uid": "u1"}, {"image": object(), "content": "d", "uid": None}]
    ds = FakeDataset(rows)
    assert list(iter_corpus(ds, text_field="content", id_field="uid")) == [
        Document("u1", "a b c"),
        Document(text_id("d"), "d"),
    ]
    with pytest.raises(TlgeomError, match="^text_field='text'.*'image', 'content', 'uid'"):
        iter_corpus(ds)
    with pytest.raises(TlgeomError, match=r"source\['train'\]"):
        iter_corpus(FakeDatasetDict(train=ds))
    # an IterableDataset whose features are unknown (column_names None) is read as an iterable of dicts
    streaming = FakeDataset(rows)
    streaming.__class__ = type("IterableDataset", (FakeDataset,), {"column_names": None})
    assert [d.text for d in iter_corpus(streaming, text_field="content")] == ["a b c", "d"]


def test_dataframe_and_arrow_table():
    df = pd.DataFrame({"id": ["x", "y", "z"], "text": ["one", "two  words", ""]})
    want = [Document("x", "one"), Document("y", "two words")]
    assert list(iter_corpus(df)) == want
    assert list(iter_corpus(pa.Table.from_pandas(df))) == want
    with pytest.raises(TlgeomError, match="^text_field='body'"):
        iter_corpus(df, text_field="body")


def test_generator_source_is_read_lazily():
    pulled = []

    def gen():
        for i in range(100):  # finite: an eager reader fails the test instead of hanging
            pulled.append(i)
            yield f"document number {i}"

    it = iter_corpus(gen())
    assert pulled == []  # nothing read when called
    first = list(itertools.islice(it, 3))
    assert [d.text for d in first] == [f"document number {i}" for i in range(3)] and pulled == [0, 1, 2]
    assert next(it).text == "document number 3" and pulled == [0, 1, 2, 3]


def test_ids_stable_across_calls(tmp_path):
    f = _parquet(tmp_path / "c.parquet")
    j = tmp_path / "c.jsonl"
    j.write_text("\n".join(json.dumps({"text": t}) for t in TEXTS), encoding="utf-8")
    runs = [[d.id for d in iter_corpus(src)] for src in (f, f, j, TEXTS, iter(TEXTS))]
    assert all(r == runs[0] for r in runs) and len(set(runs[0])) == len(runs[0]) == 4


def test_cli_corpus_parquet_text_field(tiny_gpt2, tmp_path, monkeypatch, capsys):
    from tlgeom import cli
    from tlgeom.experiments.corpus import read_rows

    texts = ["the cat sat on the mat", "rain fell over quiet hills and rivers", "rivers ran to the sea", "the end"]
    ids = ["doc-a", "doc-b", "doc-c", "doc-d"]
    src = tmp_path / "c.parquet"
    pq.write_table(pa.table({"id": ids, "body": texts}), src, row_group_size=2)
    loads = []
    monkeypatch.setattr(cli, "_load", lambda args: loads.append(1) or tiny_gpt2)
    base = ["corpus", "--corpus", str(src), "--no-progress", "--batch-tokens", "64"]
    assert cli.main(base + ["--out", str(tmp_path / "o"), "--text-field", "body", "--max-docs", "3"]) == 0
    rows = read_rows(tmp_path / "o")
    assert sorted(rows.doc_id) == ids[:3] and "tokens/s" in capsys.readouterr().out
    # bad options are refused before the model loads, naming the option
    loads.clear()
    for extra, name in (
        ([], "text_field='text'"),  # the default column is missing: the columns are listed
        (["--text-field", "body", "--per-line"], "--per-line"),
    ):
        assert cli.main(base + ["--out", str(tmp_path / "x")] + extra) == 2
        err = capsys.readouterr().err
        assert name in err and err.count("\n") == 1
    txt = tmp_path / "d.txt"
    txt.write_text("a line\nanother line\n", encoding="utf-8")
    assert cli.main(["corpus", "--corpus", str(txt), "--out", str(tmp_path / "x"), "--id-field", "key"]) == 2
    assert "--id-field" in capsys.readouterr().err
    assert loads == []
    # --per-line on a text file: one row per line
    assert cli.main(["corpus", "--corpus", str(txt), "--out", str(tmp_path / "t"), "--per-line", "--no-progress"]) == 0
    assert sorted(read_rows(tmp_path / "t").doc_id) == sorted([text_id("a line"), text_id("another line")])


def test_cli_corpus_bad_row_met_mid_run_names_corpus(tiny_gpt2, tmp_path, monkeypatch, capsys):
    from tlgeom import cli

    src = tmp_path / "d.jsonl"
    src.write_text('{"text": "a good first row"}\n{"text": "a good second row"}\n{"title": "no text"}\n')
    monkeypatch.setattr(cli, "_load", lambda args: tiny_gpt2)
    argv = ["corpus", "--corpus", str(src), "--out", str(tmp_path / "o"), "--no-progress", "--batch-tokens", "64"]
    assert cli.main(argv) == 2  # the first row is fine: the model loads, the stream stops at line 3
    err = capsys.readouterr().err
    assert err.startswith("tlgeom corpus: error: --corpus: source=") and ":3" in err and err.count("\n") == 1
