"""Data bundled with tlgeom (written for this project)."""

from importlib.resources import files


def read_text(name: str) -> str:
    """The text of a bundled data file."""
    return (files(__name__) / name).read_text(encoding="utf-8")


#: A real English paragraph of about 160 SmolLM2 tokens, for landscapes and demos.
PARAGRAPH = read_text("paragraph.txt").strip()

# Real English corpora fetched once into a cache (not bundled): see tlgeom.data.corpora.
from tlgeom.data.corpora import Document, fetch_corpus, iter_corpus, load_corpus  # noqa: E402

__all__ = ["PARAGRAPH", "read_text", "Document", "load_corpus", "iter_corpus", "fetch_corpus"]
