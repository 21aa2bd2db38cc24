"""Real English text, offline: three public corpora and any user source, as :class:`Document` objects.

Corpora (fetched once into a cache directory, never bundled with tlgeom)
-----------------------------------------------------------------------
``"lee"``
    ``lee_background.cor``: 300 news articles (one per line, 45-620 words, mean ≈ 200) from the
    Australian Broadcasting Corporation's news mail service, collected by Lee, Pincombe & Welsh (2005),
    "An empirical evaluation of models of text document similarity", Proc. CogSci 27, 1254-1259.
``"lee_test"``
    ``lee.cor``: the 50 shorter ABC articles (45-126 words) whose pairwise similarities those authors had
    rated by people.
``"enwiki"``
    ``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``: a shortened 2016 English
    Wikipedia dump (206 pages; 104 articles with prose); each article's wikitext is reduced to its
    prose here (templates, references, tables, lists, headings and markup removed; link labels kept).

Origin and licence. All three files are the test data of the ``gensim`` package (version 4.4.0, released
under LGPL-2.1-only; https://github.com/piskvorky/gensim, ``gensim/test/test_data/``). The Lee articles
are ABC news text redistributed there for research use; copyright stays with the ABC. The Wikipedia text
is © Wikipedia contributors under CC BY-SA 3.0 / GFDL. tlgeom does not redistribute any of them and does
not depend on gensim: :func:`fetch_corpus` runs ``pip download --no-deps gensim==4.4.0`` (so pip's own
index configuration applies) and extracts just these files, checked against their SHA-256, into the
cache directory ``$TLGEOM_CACHE/corpora`` (default ``~/.cache/tlgeom/corpora``). Offline, point
``wheel=`` (or ``$TLGEOM_GENSIM_WHEEL``) at a gensim 4.4.0 wheel copied from elsewhere.

Command line: ``python -m tlgeom.data.corpora fetch lee`` (prints the cached path), ``... list``.

User sources. :func:`iter_corpus` reads any of them lazily (memory flat in the corpus size) and
:func:`load_corpus` as a list: a text file (one document per blank-line-separated paragraph, or one per
line with ``per_line=True``), a JSON Lines file (``.jsonl``; one object per line with a ``text`` field
and an optional ``id``), a Parquet file or a directory of them (a ``text`` column and an optional ``id``
column, read row group by row group with ``pyarrow``), a Hugging Face ``datasets`` dataset (duck-typed;
``datasets`` is not a dependency), a DataFrame / Arrow table, or any iterable of strings, dicts or
documents. A document's id is the one given, or :func:`text_id` of its text.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import html
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tlgeom._errors import TlgeomError, bad_arg

GENSIM_VERSION = "4.4.0"
_MEMBER_DIR = "gensim/test/test_data/"


@dataclass(frozen=True)
class _Source:
    file: str
    sha256: str
    description: str


#: The named corpora: file inside the gensim wheel, its SHA-256, and what it is.
CORPORA: dict[str, _Source] = {
    "lee": _Source(
        "lee_background.cor",
        "5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb",
        "300 ABC news articles (Lee, Pincombe & Welsh 2005 background corpus), one per line",
    ),
    "lee_test": _Source(
        "lee.cor",
        "a878f9a58f6743c32985c56c2f2f75988386216b38a4023a01fd3bcf7884d93e",
        "50 short ABC news articles (Lee et al. 2005 test set), one per line",
    ),
    "enwiki": _Source(
        "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
        "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
        "shortened 2016 English Wikipedia dump; article prose with the markup removed",
    ),
}


@dataclass(frozen=True)
class Document:
    """One text of a corpus.

    Attributes:
        id: stable identifier: given by the source (``"lee-017"``, ``"enwiki-12"``, a JSONL ``id``) or
            ``"sha1-"`` + the first 12 hex digits of the SHA-1 of the UTF-8 text.
        text: the document's text (whitespace inside a paragraph collapsed to single spaces).
    """

    id: str
    text: str

    @property
    def n_words(self) -> int:
        """Number of whitespace-separated words."""
        return len(self.text.split())


def text_id(text: str) -> str:
    """The id of a text without one: ``"sha1-"`` + the first 12 hex digits of SHA-1(UTF-8 text)."""
    return "sha1-" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------- cache


def cache_dir() -> Path:
    """``$TLGEOM_CACHE/corpora`` if ``TLGEOM_CACHE`` is set, else ``~/.cache/tlgeom/corpora``."""
    root = os.environ.get("TLGEOM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "tlgeom") / "corpora"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _pip_command() -> list[str]:
    """A pip to run: this interpreter's if it has one, else the first ``pip``/``pip3`` on PATH."""
    import importlib.util

    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for exe in ("pip", "pip3"):
        found = shutil.which(exe)
        if found:
            return [found]
    raise TlgeomError(
        "fetch_corpus needs pip to download the gensim wheel that carries the corpora, and found none "
        "(neither `python -m pip` nor pip/pip3 on PATH); pass wheel= or set TLGEOM_GENSIM_WHEEL"
    )


def _download_wheel(dest: Path) -> Path:
    """``pip download --no-deps gensim==4.4.0`` into ``dest``; any platform's wheel carries the same data."""
    cmd = _pip_command() + [
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--disable-pip-version-check",
        f"gensim=={GENSIM_VERSION}",
        "-d",
        str(dest),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob(f"gensim-{GENSIM_VERSION}-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise TlgeomError(
            f"could not download gensim=={GENSIM_VERSION} (which carries the corpora) and they are not cached "
            f"in {cache_dir()}: are you offline? `{' '.join(cmd[:3])} ...` said: {' | '.join(tail)}. "
            "Copy a gensim 4.4.0 wheel here and pass wheel=PATH (or set TLGEOM_GENSIM_WHEEL), "
            "or run `python -m tlgeom.data.corpora fetch lee` once where pip can reach an index."
        )
    return wheels[0]


def _extract(wheel: Path, target: Path) -> None:
    """Write every named corpus file of ``wheel`` into ``target``, each checked against its SHA-256."""
    try:
        archive = zipfile.ZipFile(wheel)
    except (OSError, zipfile.BadZipFile) as e:
        raise bad_arg("wheel", str(wheel), f"a readable gensim {GENSIM_VERSION} wheel ({e})") from None
    target.mkdir(parents=True, exist_ok=True)
    with archive:
        for name, src in CORPORA.items():
            try:
                data = archive.read(_MEMBER_DIR + src.file)
            except KeyError:
                raise bad_arg("wheel", str(wheel), f"a gensim {GENSIM_VERSION} wheel containing {src.file}") from None
            digest = hashlib.sha256(data).hexdigest()
            if digest != src.sha256:
                raise TlgeomError(
                    f"corpus {name!r}: {src.file} in {wheel} has SHA-256 {digest}, expected {src.sha256} "
                    f"(not the gensim {GENSIM_VERSION} file)"
                )
            part = target / (src.file + ".part")
            part.write_bytes(data)
            part.replace(target / src.file)  # atomic: a reader never sees half a file


def fetch_corpus(name: str, *, wheel: str | os.PathLike | None = None) -> Path:
    """The cached file of corpus ``name``, downloading (or extracting from ``wheel``) when missing.

    Args:
        name: one of :data:`CORPORA` (``"lee"``, ``"lee_test"``, ``"enwiki"``).
        wheel: a local gensim 4.4.0 wheel to extract from instead of downloading; default
            ``$TLGEOM_GENSIM_WHEEL`` if set.

    Returns:
        The path of the corpus file in :func:`cache_dir` (its SHA-256 checked when written).

    Raises:
        TlgeomError: unknown name; or not cached and the wheel can be neither downloaded nor read.
    """
    if not isinstance(name, str) or name not in CORPORA:
        raise bad_arg("name", name, "one of " + ", ".join(repr(n) for n in CORPORA))
    path = cache_dir() / CORPORA[name].file
    if path.is_file():
        return path
    wheel = wheel if wheel is not None else os.environ.get("TLGEOM_GENSIM_WHEEL") or None
    if wheel is not None:
        _extract(Path(wheel), path.parent)
    else:
        with tempfile.TemporaryDirectory(prefix="tlgeom-gensim-") as tmp:
            _extract(_download_wheel(Path(tmp)), path.parent)
    return path


# ---------------------------------------------------------------------------------------------- parsing


def _decode(data: bytes) -> str:
    """UTF-8, else Latin-1 (``lee.cor`` has a Latin-1 pound sign)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _squash(text: str) -> str:
    return " ".join(text.split())


def _file_lines(path: Path) -> Iterator[str]:
    """The lines of a file, streamed: split at ``\\n``, each decoded by :func:`_decode` on its own."""
    with open(path, "rb") as f:
        for raw in f:
            yield _decode(raw[:-1] if raw.endswith(b"\n") else raw)


def _read_lines(path: Path, prefix: str) -> Iterator[Document]:
    i = 0
    for line in _file_lines(path):
        for part in line.splitlines() or [""]:  # str.splitlines' breaks (\r, \x0b, \u2028, ...) count too
            if part.strip():
                yield Document(f"{prefix}-{i:03d}", _squash(part))
            i += 1


_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_DROP_LINK = re.compile(r"^\s*:?\s*(file|image|media|category|[a-z]{2,3}(-[a-z]+)?)\s*:", re.IGNORECASE)


def _link(m: re.Match) -> str:
    inner = m.group(1)
    if _DROP_LINK.match(inner):
        return ""
    return inner.rsplit("|", 1)[-1]


def _innermost(pattern: re.Pattern, repl, text: str) -> str:
    """Apply ``pattern`` until nothing changes (nested templates/links go innermost first)."""
    while True:
        new = pattern.sub(repl, text)
        if new == text:
            return text
        text = new


_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_TABLE = re.compile(r"\{\|.*?\|\}", re.DOTALL)
_REF = re.compile(r"<ref[^>/]*/>|<ref[^>]*>.*?</ref>", re.DOTALL | re.IGNORECASE)
_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_EXTLINK = re.compile(r"\[(?:https?:)?//[^\s\]]+\s*([^\]]*)\]")
_TAG = re.compile(r"<[^>]+>")


def wiki_prose(wikitext: str) -> str:
    """The running prose of a wikitext page: paragraphs separated by blank lines, markup removed.

    Removed: comments, ``<ref>``s, templates ``{{…}}`` (nested), tables ``{|…|}``, file/category/
    interlanguage links, HTML tags, bold/italic quotes, headings, list and indented lines. Kept: the label
    of internal links ``[[target|label]]`` and external links ``[url label]``. Paragraphs under 5 words
    (captions, leftovers) are dropped.
    """
    t = _COMMENT.sub("", wikitext)
    t = _REF.sub("", t)
    t = _innermost(_TEMPLATE, "", t)
    t = _innermost(_TABLE, "", t)
    t = _innermost(_LINK, _link, t)
    t = _EXTLINK.sub(r"\1", t)
    t = _TAG.sub("", t)
    t = html.unescape(t).replace("\xa0", " ")
    t = re.sub(r"'{2,}", "", t)
    paragraphs: list[str] = []
    current: list[str] = []
    for line in t.splitlines():
        s = line.strip()
        if not s or s.startswith(("=", "*", "#", ":", ";", "|", "!", "{", "}")):
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        current.append(s)
    if current:
        paragraphs.append(" ".join(current))
    out = []
    for p in paragraphs:
        p = _squash(re.sub(r"\(\s*[,;]?\s*\)", "", p))  # "( ; )" left by removed templates
        p = re.sub(r"\s+([,.;:])", r"\1", p)
        if len(p.split()) >= 5:
            out.append(p)
    return "\n\n".join(out)


def _read_wiki(path: Path) -> Iterator[Document]:
    with bz2.open(path, "rb") as f:
        for _, el in ET.iterparse(f):
            if not el.tag.endswith("}page"):
                continue
            ns_uri = el.tag[: -len("page")]
            ns, pid = el.findtext(ns_uri + "ns"), el.findtext(ns_uri + "id")
            text = el.findtext(f"{ns_uri}revision/{ns_uri}text") or ""
            if ns == "0" and el.find(ns_uri + "redirect") is None:
                prose = wiki_prose(text)
                if prose:
                    yield Document(f"enwiki-{pid}", prose)
            el.clear()


def _read_text_file(path: Path, per_line: bool) -> Iterator[Document]:
    """Paragraphs (split at lines holding only spaces/tabs) or lines of a text file, streamed."""
    lines = _file_lines(path)
    if per_line:
        for line in lines:
            for part in line.splitlines():
                doc = _squash(part)
                if doc:
                    yield Document(text_id(doc), doc)
        return
    paragraph: list[str] = []
    for line in lines:
        if line.strip(" \t\r\f\v"):
            paragraph.append(line)
            continue
        doc = _squash(" ".join(paragraph))
        paragraph = []
        if doc:
            yield Document(text_id(doc), doc)
    doc = _squash(" ".join(paragraph))
    if doc:
        yield Document(text_id(doc), doc)


def _document(text: str, given_id: Any) -> Document | None:
    """A row's document: whitespace collapsed, id given (as str) or :func:`text_id`; None when empty."""
    doc = _squash(text)
    if not doc:
        return None
    return Document(text_id(doc) if given_id is None else str(given_id), doc)


def _row_document(row: Any, where: str, text_field: str, id_field: str) -> Document | None:
    if not isinstance(row, Mapping) or not isinstance(row.get(text_field), str):
        raise bad_arg("source", where, f"a JSON object with a string {text_field!r} field")
    return _document(row[text_field], row.get(id_field))


def _read_jsonl(path: Path, text_field: str, id_field: str) -> Iterator[Document]:
    for i, line in enumerate(_file_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise bad_arg("source", f"{path}:{i}", f"one JSON object per line ({e.msg})") from None
        doc = _row_document(row, f"{path}:{i}", text_field, id_field)
        if doc is not None:
            yield doc


# ---------------------------------------------------------------------------------------------- tables

#: Rows per Arrow batch read from a Parquet file (one row group is decoded at a time, sliced into these).
PARQUET_BATCH_ROWS = 1024


def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise TlgeomError(
            "reading a .parquet corpus needs pyarrow, which is not installed: pip install 'tlgeom[corpus]'"
        ) from None
    return pq


def _parquet_files(path: Path) -> list[Path]:
    """``path`` itself, or every ``*.parquet`` under the directory ``path`` (recursively, sorted)."""
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*.parquet") if p.is_file())
    if not files:
        raise bad_arg("source", str(path), "a directory holding .parquet files (this one has none)")
    return files


def _columns_error(arg: str, field: str, where: str, columns: Sequence[str]) -> TlgeomError:
    shown = ", ".join(repr(c) for c in columns) or "none"
    return bad_arg(arg, field, f"a column of {where}; its columns are {shown}")


def _open_parquet(files: list[Path], text_field: str) -> list[Any]:
    """The :class:`pyarrow.parquet.ParquetFile` of each file (footers only), each checked for ``text_field``."""
    pq = _pyarrow_parquet()
    opened = []
    for f in files:
        try:
            pf = pq.ParquetFile(f)
        except Exception as e:  # pyarrow raises ArrowInvalid / OSError for a file that is not Parquet
            raise bad_arg("source", str(f), f"a readable Parquet file ({e.__class__.__name__}: {e})") from None
        if text_field not in pf.schema_arrow.names:
            raise _columns_error("text_field", text_field, str(f), pf.schema_arrow.names)
        opened.append(pf)
    return opened


def _read_parquet(opened: list[Any], text_field: str, id_field: str) -> Iterator[Document]:
    """Rows of Parquet files, one row group at a time (``ParquetFile.iter_batches``), never a whole file."""
    for pf in opened:
        columns = [text_field] + ([id_field] if id_field in pf.schema_arrow.names and id_field != text_field else [])
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            yield from _arrow_batch(batch, text_field, id_field)


def _arrow_batch(batch: Any, text_field: str, id_field: str) -> Iterator[Document]:
    names = batch.schema.names
    texts = batch.column(names.index(text_field)).to_pylist()
    ids = batch.column(names.index(id_field)).to_pylist() if id_field in names else [None] * len(texts)
    for text, given in zip(texts, ids):
        if text is None:  # a null text is a missing document, like an empty one
            continue
        if not isinstance(text, str):
            raise bad_arg("text_field", text_field, f"a column of strings (it holds {type(text).__name__})")
        doc = _document(text, given)
        if doc is not None:
            yield doc


def _read_dataset(dataset: Any, text_field: str, id_field: str) -> Iterator[Document]:
    """Rows of a Hugging Face ``datasets.Dataset`` / ``IterableDataset`` (or anything iterating dicts)."""
    for i, row in enumerate(dataset):
        doc = _row_document(row, f"row {i} of a {type(dataset).__name__}", text_field, id_field)
        if doc is not None:
            yield doc


def _read_iterable(items: Iterable[Any], text_field: str, id_field: str) -> Iterator[Document]:
    for i, item in enumerate(items):
        if isinstance(item, Document):
            doc: Document | None = item if item.text.strip() else None
        elif isinstance(item, str):
            doc = _document(item, None)
        elif isinstance(item, Mapping):
            doc = _row_document(item, f"item {i}", text_field, id_field)
        else:
            raise bad_arg(f"source[{i}]", type(item).__name__, "a str, a dict or a tlgeom.data.corpora.Document")
        if doc is not None:
            yield doc


# ---------------------------------------------------------------------------------------------- reading

_ACCEPTED = (
    "one of "
    + ", ".join(repr(c) for c in CORPORA)
    + " or the path of a .txt/.jsonl/.parquet file or of a directory of .parquet files, a Hugging Face "
    "dataset, or an iterable of str / dict / Document"
)


def corpus_source(source: Any, *, per_line: bool = False, text_field: str = "text", id_field: str = "id") -> dict:
    """What identifies a corpus for a resumable run (``run.json``'s ``source``): a named corpus by its
    name; a file or a folder of Parquet files by its absolute path and a SHA-256 of its content (every
    file's relative name and bytes, streamed), with the reading options that change its documents."""
    if isinstance(source, str) and source in CORPORA:
        return {"corpus": source}
    path = Path(source)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return {
        "path": str(path.absolute()),
        "sha256": h.hexdigest(),
        "per_line": per_line,
        "text_field": text_field,
        "id_field": id_field,
    }


def iter_corpus(
    source: Any,
    *,
    per_line: bool = False,
    text_field: str = "text",
    id_field: str = "id",
    wheel: str | os.PathLike | None = None,
) -> Iterator[Document]:
    """The documents of a corpus, read lazily in source order (memory flat in the corpus size).

    The source is checked now (a name, an existing path, the text column of every Parquet file, the
    columns of a dataset); the documents are read as the iterator is consumed. Every text has its
    whitespace collapsed (a bare string, a JSONL row, a Parquet row or a dataset row holding the same text
    give the same :class:`Document`); empty texts (and null Parquet values) are skipped.

    Args:
        source: any of

            * a corpus name (``"lee"``, ``"lee_test"``, ``"enwiki"``; fetched by :func:`fetch_corpus`);
            * the path of a text file (documents separated by lines holding only whitespace; one per
              non-empty line with ``per_line=True``), a ``.jsonl`` file (one JSON object per line), a
              ``.parquet`` file, or a directory of ``.parquet`` files (all of them below it, in sorted
              path order), read row group by row group with ``pyarrow`` (``pip install 'tlgeom[corpus]'``);
            * a Hugging Face ``datasets.Dataset`` / ``IterableDataset`` (anything with ``column_names``
              iterating dicts; ``datasets`` itself is never imported here), a pandas DataFrame or a
              pyarrow Table / RecordBatch;
            * any other iterable of ``str``, ``dict`` (``text_field``/``id_field`` keys) or
              :class:`Document` (passed through as they are).
        per_line: text files only: one document per non-empty line instead of per paragraph.
        text_field: JSONL / Parquet / dataset / dict rows: the field (column) holding the text.
        id_field: the same rows: the field holding the id (a missing field or a null value: hashed).
        wheel: passed to :func:`fetch_corpus`.

    Returns:
        An iterator of documents; ids are stable: given by the source (as ``str``) or :func:`text_id`
        of the (whitespace-collapsed) text.

    Raises:
        TlgeomError: unknown name / missing path, ``per_line`` on a source that is not a text file, a text
            column that a Parquet file or a dataset lacks (the message lists the columns it has); while
            reading: a malformed JSONL line, a row without a string text, an item of another type.
    """
    if not isinstance(per_line, bool):
        raise bad_arg("per_line", per_line, "True or False")
    for arg, value in (("text_field", text_field), ("id_field", id_field)):
        if not isinstance(value, str) or not value:
            raise bad_arg(arg, value, "a non-empty str (a field / column name)")
    text_file = False
    docs: Iterator[Document]
    if isinstance(source, str) and source in CORPORA:
        path = fetch_corpus(source, wheel=wheel)
        docs = _read_wiki(path) if source == "enwiki" else _read_lines(path, source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir() or (path.is_file() and path.suffix.lower() == ".parquet"):
            docs = _read_parquet(_open_parquet(_parquet_files(path), text_field), text_field, id_field)
        elif path.is_file() and path.suffix.lower() == ".jsonl":
            docs = _read_jsonl(path, text_field, id_field)
        elif path.is_file():
            docs, text_file = _read_text_file(path, per_line), True
        else:
            raise bad_arg("source", source, _ACCEPTED)
    else:
        docs = _read_object(source, text_field, id_field)
    if per_line and not text_file:
        raise bad_arg("per_line", per_line, "False unless the source is a text file (it splits text files only)")
    return docs


def _read_object(source: Any, text_field: str, id_field: str) -> Iterator[Document]:
    """An in-memory source: an Arrow table, a DataFrame, a Hugging Face dataset or an iterable."""
    if isinstance(source, (bytes, bytearray, Document)) or source is None:
        raise bad_arg("source", type(source).__name__, _ACCEPTED)
    kind = type(source).__module__.split(".")[0]
    if kind == "pyarrow" and hasattr(source, "to_batches"):  # Table / RecordBatch
        names = list(source.schema.names)
        if text_field not in names:
            raise _columns_error("text_field", text_field, f"the {type(source).__name__}", names)
        batches = source.to_batches(max_chunksize=PARQUET_BATCH_ROWS)
        return (doc for batch in batches for doc in _arrow_batch(batch, text_field, id_field))
    if kind == "pandas" and hasattr(source, "columns"):  # DataFrame: iterating it would yield column names
        names = [str(c) for c in source.columns]
        if text_field not in names:
            raise _columns_error("text_field", text_field, "the DataFrame", names)
        cols = [text_field] + ([id_field] if id_field in names and id_field != text_field else [])
        rows = (dict(zip(cols, values)) for values in source[cols].itertuples(index=False, name=None))
        return _read_dataset(rows, text_field, id_field)
    columns = getattr(source, "column_names", None)
    if isinstance(columns, Mapping):  # a datasets.DatasetDict: iterating it would yield split names
        raise bad_arg(
            "source", type(source).__name__, f"one split of it, e.g. source[{next(iter(columns), 'train')!r}]"
        )
    if columns is not None:  # a Hugging Face Dataset / IterableDataset (IterableDataset: None when unknown)
        names = list(columns)
        if text_field not in names:
            raise _columns_error("text_field", text_field, f"the {type(source).__name__}", names)
        select = getattr(source, "select_columns", None)
        if callable(select):  # decode only the columns used (a dataset may hold images, audio, ...)
            source = select([text_field] + ([id_field] if id_field in names and id_field != text_field else []))
        return _read_dataset(source, text_field, id_field)
    if not isinstance(source, Iterable):
        raise bad_arg("source", type(source).__name__, _ACCEPTED)
    return _read_iterable(source, text_field, id_field)


def _truncate(text: str, max_words: int) -> str:
    """The first ``max_words`` words, keeping paragraph breaks."""
    kept, count = [], 0
    for para in text.split("\n\n"):
        words = para.split()
        if count + len(words) <= max_words:
            kept.append(para)
            count += len(words)
        else:
            if max_words - count > 0:
                kept.append(" ".join(words[: max_words - count]))
            break
    return "\n\n".join(kept)


def _check_count(arg: str, value, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise bad_arg(arg, value, f"None or an int >= {minimum}")
    return value


def load_corpus(
    source: Any,
    n: int | None = None,
    *,
    min_words: int = 1,
    max_words: int | None = None,
    per_line: bool = False,
    text_field: str = "text",
    wheel: str | os.PathLike | None = None,
) -> list[Document]:
    """Documents of a named corpus or a user file, in file order, as a list (:func:`iter_corpus`, filtered).

    Args:
        source: a corpus name (``"lee"``, ``"lee_test"``, ``"enwiki"``; fetched by :func:`fetch_corpus`
            when not cached), the path of a ``.jsonl`` file (one JSON object per line with a ``text_field``
            string and an optional ``id``), a ``.parquet`` file or directory (a ``text_field`` column and an
            optional ``id`` column), a text file (documents separated by blank lines; one per line with
            ``per_line=True``), or any other source :func:`iter_corpus` reads.
        n: keep the first ``n`` documents that pass ``min_words`` (None: all).
        min_words: drop documents with fewer whitespace-separated words than this.
        max_words: truncate each kept document to its first ``max_words`` words (None: no limit).
        per_line: text files only: one document per non-empty line instead of per paragraph.
        text_field: JSONL / Parquet / dataset rows: the field holding the text.
        wheel: passed to :func:`fetch_corpus`.

    Returns:
        The documents; ids are stable (from the source, or :func:`text_id` of the full text).

    Raises:
        TlgeomError: unknown name / missing file, malformed JSONL, or a bad count.
    """
    n = _check_count("n", n, 0)
    min_words = _check_count("min_words", min_words, 0) or 0
    max_words = _check_count("max_words", max_words, 1)
    if max_words is not None and max_words < min_words:
        raise bad_arg("max_words", max_words, f"None or an int >= min_words={min_words}")
    docs = iter_corpus(source, per_line=per_line, text_field=text_field, wheel=wheel)
    kept = (doc for doc in docs if doc.n_words >= min_words)
    return [
        doc if max_words is None else Document(doc.id, _truncate(doc.text, max_words))
        for doc in itertools.islice(kept, n)
    ]


def main(argv: list[str] | None = None) -> int:
    """``python -m tlgeom.data.corpora fetch NAME [--wheel PATH]`` / ``list``."""
    parser = argparse.ArgumentParser(prog="python -m tlgeom.data.corpora", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download (once) and print the cached path of a corpus")
    fetch.add_argument("name", choices=sorted(CORPORA) + ["all"])
    fetch.add_argument("--wheel", help="a local gensim 4.4.0 wheel to extract from (offline)")
    sub.add_parser("list", help="the named corpora and whether each is cached")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, src in CORPORA.items():
            cached = (cache_dir() / src.file).is_file()
            print(f"{name:9s} {'cached' if cached else 'not cached':10s} {src.description}")
        return 0
    names = list(CORPORA) if args.name == "all" else [args.name]
    try:
        for name in names:
            print(fetch_corpus(name, wheel=args.wheel))
    except TlgeomError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
