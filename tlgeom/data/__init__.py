"""Data bundled with tlgeom (written for this project)."""

from importlib.resources import files


def read_text(name: str) -> str:
    """The text of a bundled data file."""
    return (files(__name__) / name).read_text(encoding="utf-8")


#: A real English paragraph of about 160 SmolLM2 tokens, for landscapes and demos.
PARAGRAPH = read_text("paragraph.txt").strip()
#: Twelve short English sentences (10-17 SmolLM2 tokens each), each one text (one unit of inference) in
#: the curvature tests of ``tlgeom report`` / ``curvature-test``: enough texts that every test of the
#: family can reject (a paired sign-flip test over 12 texts reaches p = 2/4096, below α/11 after Holm).
SENTENCES = tuple(line.strip() for line in read_text("sentences.txt").splitlines() if line.strip())

# Real English corpora fetched once into a cache (not bundled): see tlgeom.data.corpora.
from tlgeom.data.corpora import Document, fetch_corpus, iter_corpus, load_corpus  # noqa: E402

__all__ = ["PARAGRAPH", "SENTENCES", "read_text", "Document", "load_corpus", "iter_corpus", "fetch_corpus"]
