"""tlgeom.data.corpora: user text/JSONL files, counts and truncation, wikitext prose, the fetch step."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile

import pytest

from tlgeom import TlgeomError
from tlgeom.data import corpora
from tlgeom.data.corpora import CORPORA, Document, fetch_corpus, load_corpus, text_id, wiki_prose


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty tlgeom cache, so nothing here reads or writes the user's."""
    monkeypatch.setenv("TLGEOM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TLGEOM_GENSIM_WHEEL", raising=False)
    return tmp_path / "cache" / "corpora"


def test_text_file_paragraphs_and_lines(tmp_path):
    f = tmp_path / "docs.txt"
    f.write_text("The cat sat\non the mat.\n\n  \nA second   paragraph here.\n\n\nThird one.\n", encoding="utf-8")
    docs = load_corpus(f)
    assert [d.text for d in docs] == ["The cat sat on the mat.", "A second paragraph here.", "Third one."]
    assert [d.id for d in docs] == [text_id(d.text) for d in docs]
    assert docs[0].id == "sha1-" + hashlib.sha1(b"The cat sat on the mat.").hexdigest()[:12]
    per_line = load_corpus(str(f), per_line=True)
    assert [d.text for d in per_line] == ["The cat sat", "on the mat.", "A second paragraph here.", "Third one."]


def test_ids_are_stable_across_loads_and_files(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("alpha beta\n\ngamma delta epsilon", encoding="utf-8")
    b.write_text("gamma delta epsilon\n\nzeta", encoding="utf-8")
    assert load_corpus(a)[1].id == load_corpus(b)[0].id
    assert load_corpus(a)[0].id != load_corpus(a)[1].id


def test_jsonl_ids_given_or_hashed(tmp_path):
    f = tmp_path / "docs.jsonl"
    rows = [{"id": "d1", "text": "one two three"}, {"text": "four  five"}, {"id": 7, "text": "six"}]
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    docs = load_corpus(f)
    assert docs == [Document("d1", "one two three"), Document(text_id("four five"), "four five"), Document("7", "six")]
    g = tmp_path / "body.jsonl"
    g.write_text(json.dumps({"body": "x y"}) + "\n", encoding="utf-8")
    assert load_corpus(g, text_field="body")[0].text == "x y"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [('{"text": "ok"}\nnot json\n', ":2"), ('{"title": "no text"}\n', "'text'"), ('["a list"]\n', "'text'")],
)
def test_bad_jsonl_names_the_line(tmp_path, content, fragment):
    f = tmp_path / "bad.jsonl"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(TlgeomError, match="source=") as err:
        load_corpus(f)
    assert fragment in str(err.value)


def test_counts_min_and_max_words(tmp_path):
    f = tmp_path / "docs.txt"
    f.write_text("a b\n\nc d e f g\n\nh i j\n\nk l m n", encoding="utf-8")
    assert [d.n_words for d in load_corpus(f, min_words=3)] == [5, 3, 4]
    assert [d.n_words for d in load_corpus(f, n=2, min_words=3)] == [5, 3]  # n counts kept documents
    docs = load_corpus(f, max_words=3)
    assert [d.text for d in docs] == ["a b", "c d e", "h i j", "k l m"]
    assert docs[1].id == text_id("c d e f g")  # the id is of the full text, not the truncated one
    assert load_corpus(f, n=0) == []


def test_truncation_keeps_paragraph_breaks():
    assert corpora._truncate("a b\n\nc d e", 3) == "a b\n\nc"
    assert corpora._truncate("a b\n\nc d e", 2) == "a b"
    assert corpora._truncate("a b\n\nc d e", 9) == "a b\n\nc d e"


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n": -1}, "n"),
        ({"min_words": True}, "min_words"),
        ({"max_words": 0}, "max_words"),
        ({"min_words": 5, "max_words": 3}, "max_words"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, name):
    f = tmp_path / "docs.txt"
    f.write_text("a b c", encoding="utf-8")
    with pytest.raises(TlgeomError, match=f"^{name}="):
        load_corpus(f, **kwargs)


def test_unknown_source_lists_what_is_accepted(tmp_path, cache):
    with pytest.raises(TlgeomError, match="'lee', 'lee_test', 'enwiki' or the path"):
        load_corpus(tmp_path / "missing.txt")
    with pytest.raises(TlgeomError, match="^name='wiki'"):
        fetch_corpus("wiki")


def test_wiki_prose_removes_markup():
    page = (
        "{{Infobox|name={{nested|x}}}}\n'''Cats''' are [[mammal]]s kept as [[Pet|pets]]"
        "<ref>Smith 2001</ref> since [[Ancient Egypt|antiquity]]<ref name=a/>.\n"
        "[[File:Cat.jpg|thumb|A [[cat]] sitting]]\n\n== History ==\n"
        "* a list item that goes away\n{| class=wikitable\n| cell || cell\n|}\n"
        "See the [http://example.org cat site] for more about cats &amp; dogs.\n"
        "<!-- hidden note -->Short one.\n[[Category:Felines]]\n[[de:Katze]]"
    )
    assert wiki_prose(page) == (
        "Cats are mammals kept as pets since antiquity.\n\nSee the cat site for more about cats & dogs. Short one."
    )


def _fake_wheel(path, sources):
    """A zip laid out like the gensim wheel holding the given corpus bytes."""
    with zipfile.ZipFile(path, "w") as z:
        for name, data in sources.items():
            z.writestr(corpora._MEMBER_DIR + CORPORA[name].file, data)
    return path


def test_fetch_from_a_local_wheel_checks_the_hash(tmp_path, cache, monkeypatch):
    lee = b"First article here.\nSecond article \xa3 here.\n"
    fake = {"lee": lee, "lee_test": b"x\n", "enwiki": b"y"}
    monkeypatch.setitem(CORPORA, "lee", corpora._Source(CORPORA["lee"].file, hashlib.sha256(lee).hexdigest(), "test"))
    for name in ("lee_test", "enwiki"):
        monkeypatch.setitem(
            CORPORA, name, corpora._Source(CORPORA[name].file, hashlib.sha256(fake[name]).hexdigest(), "t")
        )
    wheel = _fake_wheel(tmp_path / "g.whl", fake)
    path = fetch_corpus("lee", wheel=wheel)
    assert path == cache / CORPORA["lee"].file and path.read_bytes() == lee
    docs = load_corpus("lee")  # cached now: no wheel needed
    assert docs == [Document("lee-000", "First article here."), Document("lee-001", "Second article £ here.")]

    corrupt = _fake_wheel(tmp_path / "c.whl", {**fake, "lee_test": b"tampered\n"})
    (cache / CORPORA["lee_test"].file).unlink()
    with pytest.raises(TlgeomError, match="SHA-256"):
        fetch_corpus("lee_test", wheel=corrupt)
    with pytest.raises(TlgeomError, match="^wheel="):
        fetch_corpus("lee_test", wheel=tmp_path / "not-a-wheel.whl")


def test_offline_and_not_cached_is_a_clear_error(tmp_path, cache, monkeypatch):
    """pip with no index and an empty find-links folder is what being offline looks like to fetch_corpus."""
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(empty))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(TlgeomError, match="offline.*wheel=PATH"):
        fetch_corpus("lee")
    assert not cache.exists() or not any(cache.iterdir())


def test_real_lee_corpus_loads():
    """Fetches the real corpus into the user's cache once (pip download of gensim 4.4.0's wheel)."""
    docs = load_corpus("lee")
    assert len(docs) == 300 and len({d.id for d in docs}) == 300
    assert docs[0].text.startswith("Hundreds of people have been forced to vacate their homes")
    assert min(d.n_words for d in docs) >= 45
    short = load_corpus("lee", n=60, max_words=100)
    assert len(short) == 60 and max(d.n_words for d in short) == 100
    assert len(load_corpus("lee_test")) == 50


def test_command_line_fetch_prints_the_cached_path(capsys):
    assert corpora.main(["fetch", "lee"]) == 0
    assert capsys.readouterr().out.strip() == str(corpora.cache_dir() / CORPORA["lee"].file)
