"""Streaming: fold each trajectory point into running quantities as the forward pass reaches it.

A :class:`StreamMetric` sees the residual stream of every token one point at a time, in
forward order, and keeps only what it needs (typically the previous point and the previous
step), so per-token metrics cost O(batch·pos·d_model) memory whatever the model's depth.

Use :func:`stream` for one call, or :meth:`StreamMetric.hooks` with TransformerLens' own
``model.hooks(...)`` / ``run_with_hooks`` to compose with other hooks::

    angles = tlgeom.TurningAngles()
    with model.hooks(fwd_hooks=angles.hooks(model)):
        model(tokens)
    angles.result()   # [batch, pos, point-2] radians
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from jaxtyping import Float

from . import _compat
from ._errors import bad_arg
from .curvature import angle_between, chord_ratio


class StreamMetric:
    """Base class. Subclasses implement :meth:`update` and :meth:`result`.

    ``update(index, x)`` receives point ``index`` as a float64 tensor ``[batch, pos, d_model]``.
    """

    name = "metric"

    def start(self, n_points: int) -> None:
        """Called before the forward pass (resets state)."""
        self.n_points = n_points

    def update(self, index: int, x: Float[torch.Tensor, "batch pos d_model"]) -> None:
        raise NotImplementedError

    def result(self) -> Any:
        raise NotImplementedError

    def hooks(self, model: Any, points: str = "resid") -> list[tuple[str, Any]]:
        """``(hook_name, fn)`` pairs for ``model.hooks`` / ``run_with_hooks``; calls :meth:`start`."""
        names = _compat.point_hook_names(model, points)
        self.start(len(names))

        def make(i: int):
            def hook(act, hook=None):
                self.update(i, act.detach().to(torch.float64))
                return act

            return hook

        return [(n, make(i)) for i, n in enumerate(names)]


class StepMetric(StreamMetric):
    """Keeps the first point, the previous point and the previous step; calls :meth:`step`."""

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.first = self.prev = self.prev_step = None

    def update(self, index: int, x: torch.Tensor) -> None:
        if index == 0:
            self.first = x
        else:
            delta = x - self.prev
            self.step(index - 1, delta, self.prev_step)
            self.prev_step = delta
        self.prev = x

    def step(self, index: int, delta: torch.Tensor, prev_delta: torch.Tensor | None) -> None:
        raise NotImplementedError


class StepNorms(StepMetric):
    """``‖Δ_l‖`` per token and layer step → ``[batch, pos, point-1]``."""

    name = "step_norms"

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.values: list[torch.Tensor] = []

    def step(self, index, delta, prev_delta):
        self.values.append(torch.linalg.vector_norm(delta, dim=-1))

    def result(self) -> torch.Tensor:
        return torch.stack(self.values, dim=-1)


class TurningAngles(StepMetric):
    """Turning angle between consecutive layer steps → ``[batch, pos, point-2]`` radians."""

    name = "turning_angles"

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.values: list[torch.Tensor] = []

    def step(self, index, delta, prev_delta):
        if prev_delta is not None:
            self.values.append(angle_between(prev_delta, delta))

    def result(self) -> torch.Tensor:
        return torch.stack(self.values, dim=-1)


class LengthToChord(StepMetric):
    """``Σ‖Δ_l‖ / ‖x_last − x_0‖`` per token → ``[batch, pos]`` (running sum, two points kept)."""

    name = "length_to_chord"

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.length = None

    def step(self, index, delta, prev_delta):
        n = torch.linalg.vector_norm(delta, dim=-1)
        self.length = n if self.length is None else self.length + n

    def result(self) -> torch.Tensor:
        return chord_ratio(self.length, torch.linalg.vector_norm(self.prev - self.first, dim=-1))


def stream(
    model: Any,
    inputs: Any,
    metrics: Sequence[StreamMetric] | None = None,
    points: str = "resid",
) -> dict[str, Any]:
    """One forward pass that streams every trajectory point into ``metrics``.

    Args:
        model: a TransformerLens model.
        inputs: a string, list of strings or token ids (as :func:`record_trajectories`).
        metrics: StreamMetric instances (default: step norms, turning angles, length-to-chord).
        points: ``"resid"`` or ``"sublayer"``.

    Returns:
        ``{metric.name: metric.result(), "mask": BoolTensor [batch, pos], "tokens": …}``; padded
        positions are NaN in every per-token result.
    """
    info = _compat.check_model(model)
    metrics = list(metrics) if metrics is not None else [StepNorms(), TurningAngles(), LengthToChord()]
    if not metrics or not all(isinstance(m, StreamMetric) for m in metrics):
        raise bad_arg("metrics", metrics, "a non-empty list of tlgeom.StreamMetric instances")
    tokens, mask = _compat.tokenize(model, inputs, info)
    hooks = [h for m in metrics for h in m.hooks(model, points)]
    _compat.run_with_point_hooks(model, tokens, mask, info, hooks)
    out: dict[str, Any] = {"tokens": tokens, "mask": mask}
    for m in metrics:
        r = m.result()
        if isinstance(r, torch.Tensor) and r.dim() >= 2 and r.shape[:2] == mask.shape:
            pad = ~mask.to(r.device)
            r = r.masked_fill(pad.reshape(pad.shape + (1,) * (r.dim() - 2)), float("nan"))
        out[m.name] = r
    return out
