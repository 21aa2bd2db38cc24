"""Packaging: one version source, the typing marker shipped, the changelog in step with the version."""

from __future__ import annotations

import re
import warnings
from importlib.metadata import version
from pathlib import Path

import pytest
import tomllib

import tlgeom

ROOT = Path(__file__).parents[2]


def test_installed_metadata_version_is_the_package_version():
    """pyproject reads the version from tlgeom/_version.py; a stale install (``make`` reinstalls) fails here."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "tlgeom._version.__version__"}
    assert version("tlgeom") == tlgeom.__version__


def test_py_typed_is_shipped():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert (Path(tlgeom.__file__).parent / "py.typed").is_file()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["tlgeom"]


def test_changelog_has_a_section_for_this_version():
    """Keep a Changelog: the released part of the version (0.2.0 for 0.2.0.dev0) has its own section."""
    release = re.match(r"\d+\.\d+\.\d+", tlgeom.__version__)
    assert release is not None
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert re.search(rf"^## \[{re.escape(release.group())}\]", changelog, flags=re.M)


def test_the_tests_check_shapes_at_run_time(unchecked):
    """pyproject's addopts instrument tlgeom with jaxtyping + beartype: a misshaped tensor is refused at the call,
    and ``unchecked()`` (conftest) lets a bad-input test reach tlgeom's own check."""
    import jaxtyping
    import torch

    from tlgeom import TlgeomError
    from tlgeom.geometry.heat import graph_laplacian

    with pytest.raises(jaxtyping.TypeCheckError, match="X"):
        graph_laplacian(torch.ones(5))  # annotated Float[Tensor, "... N D"]
    with unchecked(), pytest.raises(TlgeomError, match="X="):
        graph_laplacian(torch.ones(5))


def test_warnings_are_errors_in_the_tests():
    with pytest.raises(UserWarning):
        warnings.warn("any warning fails a test", UserWarning, stacklevel=1)
