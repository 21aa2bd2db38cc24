"""The one protocol every tlgeom result follows.

Every result object has:

* ``summary() -> str``: a human-readable paragraph (``str(result)`` is the same);
* ``to_frame() -> pandas.DataFrame``: a tidy table (one row per observation);
* ``headline() -> dict``: the JSON-ready numbers that the CLI, the HTML report and the README use;
* ``plot(ax=None) -> matplotlib.figure.Figure``: draws on ``ax`` (or a new figure) and returns the figure;
* ``save(directory, name=None) -> dict[str, Path]``: writes ``<name>.png``, ``<name>.csv`` and
  ``<name>.json`` (the headline) into ``directory`` and returns their paths.

:class:`Result` implements ``save`` (and ``__str__``) from the other four; subclasses implement
those. The CLI and the report are generic loops over results.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tlgeom._errors import bad_arg


@runtime_checkable
class ResultProtocol(Protocol):
    def summary(self) -> str: ...
    def to_frame(self) -> Any: ...
    def headline(self) -> dict[str, Any]: ...
    def plot(self, ax: Any = None) -> Any: ...
    def save(self, directory: Any, name: str | None = None) -> dict[str, Path]: ...


def jsonable(x: Any) -> Any:
    """Plain JSON values: tensors/numpy → lists or floats, NaN → None, ±inf → "inf"/"-inf"."""
    import numpy as np
    import torch

    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float):
        if math.isnan(x):
            return None
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def new_axes(ax: Any = None, figsize: tuple[float | int, float | int] = (7.0, 4.0)) -> tuple[Any, Any]:
    """``(figure, ax)``: ``ax``'s figure, or a new figure with one axes."""
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def new_panels(
    ax: Any = None, nrows: int = 1, ncols: int = 1, figsize: tuple[float | int, float | int] = (7.0, 4.0)
) -> tuple[Any, Any]:
    """``(figure, axes[nrows, ncols])`` for a multi-panel plot.

    ``ax`` None: a new figure. ``ax`` an array/list of ``nrows·ncols`` axes: those (reshaped).
    ``ax`` one Axes: its area is split into the ``nrows × ncols`` panels (it is replaced), so
    ``plot(ax=ax)`` works for every result, one panel or several.
    """
    import numpy as np

    if ax is None:
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=False)
        return fig, axes
    if isinstance(ax, (list, tuple)) or hasattr(ax, "flat"):
        flat = list(getattr(ax, "flat", ax))
        if len(flat) != nrows * ncols:
            raise bad_arg("ax", f"{len(flat)} axes", f"one Axes or {nrows * ncols} axes")
        return flat[0].figure, np.asarray(flat, dtype=object).reshape(nrows, ncols)
    if nrows * ncols == 1:
        return ax.figure, np.asarray([[ax]], dtype=object)
    fig = ax.figure
    grid = ax.get_subplotspec().subgridspec(nrows, ncols)
    ax.remove()
    axes = np.empty((nrows, ncols), dtype=object)
    for i in range(nrows):
        for j in range(ncols):
            axes[i, j] = fig.add_subplot(grid[i, j])
    return fig, axes


def finite_z(z: float, fmt: str = "+.2f") -> str:
    """``"z +1.23"``, or the words for a z-score that is not a number: a null with no spread."""
    if math.isnan(z):
        return "z undefined (null has no spread)"
    if math.isinf(z):
        return "null has no spread (observed differs from every draw)"
    return f"z {z:{fmt}}"


def figure_of(obj: Any) -> Any:
    """The matplotlib Figure of a Figure, an Axes or an array of Axes."""
    if isinstance(obj, (list, tuple)) or hasattr(obj, "flat"):
        obj = next(iter(getattr(obj, "flat", obj)))
    return getattr(obj, "figure", obj) if not hasattr(obj, "savefig") else obj


class Result:
    """Base class: ``save`` and ``__str__`` from ``summary`` / ``to_frame`` / ``headline`` / ``plot``."""

    #: File stem used by :meth:`save` when no name is given.
    result_name: str = "result"

    def summary(self) -> str:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def to_frame(self) -> Any:  # pragma: no cover
        raise NotImplementedError

    def headline(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def plot(self, ax: Any = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def __str__(self) -> str:
        return self.summary()

    def save(
        self, directory: Any, name: str | None = None, *, dpi: int = 110, overwrite: bool = False
    ) -> dict[str, Path]:
        """Write ``<name>.png`` (:meth:`plot`), ``<name>.csv`` (:meth:`to_frame`) and ``<name>.json``
        (:meth:`headline` plus the summary) into ``directory`` (created if missing).

        The files are built beside ``directory`` and moved in only when all three are written; a file
        of those names that tlgeom did not write (no entry in the folder's manifest) is refused unless
        ``overwrite=True``, and an unwritable folder is a TlgeomError naming ``directory``."""
        import matplotlib.pyplot as plt

        from tlgeom._output import staged

        if name is not None and (not isinstance(name, str) or not name.strip() or "/" in name or name.startswith(".")):
            raise bad_arg("name", name, "a file stem without '/' that does not start with '.'")
        stem = name or self.result_name
        names = {ext: f"{stem}.{ext}" for ext in ("png", "csv", "json")}
        with staged(
            directory, names.values(), f"{type(self).__name__}.save({stem})", overwrite=overwrite, arg="directory"
        ) as tmp:
            fig = figure_of(self.plot())
            try:
                fig.savefig(tmp / names["png"], dpi=dpi, bbox_inches="tight")
            finally:
                plt.close(fig)
            self.to_frame().to_csv(tmp / names["csv"], index=False)
            doc = {"result": type(self).__name__, "headline": self.headline(), "summary": self.summary()}
            (tmp / names["json"]).write_text(json.dumps(jsonable(doc), indent=2) + "\n")
        return {ext: Path(directory) / n for ext, n in names.items()}


#: The columns every ``tests()`` table starts with, in this order (the claims table's test columns); then
#: ``n`` and ``inference_unit`` (:func:`tlgeom.stats.pvalues.tests_table`) and each report's own columns.
TEST_COLUMNS = (
    "null",
    "statistic",
    "space",
    "observed",
    "null_mean",
    "effect",
    "ci_low",
    "ci_high",
    "p",
    "p_adjusted",
    "n_texts",
    "reject",
)


@runtime_checkable
class TestReport(ResultProtocol, Protocol):
    """A result that tests something: :meth:`tests` returns the table
    :func:`tlgeom.stats.pvalues.tests_table` makes (:data:`TEST_COLUMNS` first)."""

    def tests(self) -> Any: ...
