"""The docs site (``make docs`` builds it with ``mkdocs build --strict``) covers every layer and tutorial."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parents[2]
LAYERS = ["geometry", "stats", "models", "experiments", "report"]


def _nav_pages(nav) -> list[str]:
    pages: list[str] = []
    for item in nav:
        for value in item.values():
            pages += _nav_pages(value) if isinstance(value, list) else [value]
    return pages


def test_every_layer_has_an_api_page_in_the_nav():
    packages = sorted(p.name for p in (ROOT / "tlgeom").iterdir() if (p / "__init__.py").is_file() and p.name != "data")
    assert packages == sorted(LAYERS)  # a new layer needs its page here and in mkdocs.yml
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    pages = _nav_pages(config["nav"])
    for layer in LAYERS:
        assert f"api/{layer}.md" in pages
        assert f"::: tlgeom.{layer}\n" in (ROOT / "docs" / "api" / f"{layer}.md").read_text(encoding="utf-8")
    assert all((ROOT / "docs" / page).is_file() for page in pages)


def test_every_tutorial_is_linked():
    text = (ROOT / "docs" / "tutorials.md").read_text(encoding="utf-8")
    notebooks = sorted(p.name for p in (ROOT / "tutorials").glob("*.ipynb"))
    assert notebooks
    for name in notebooks:
        assert f"/blob/main/tutorials/{name})" in text, name
