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

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float

from tlgeom._errors import bad_arg
from tlgeom.geometry.curvature import angle_between, chord_ratio, normalize_states
from tlgeom.models import _compat
from tlgeom.models.conventions import model_normalization


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


class _Normalizing(StepMetric):
    def __init__(self, norm: str = "rms", eps: float = 1e-5):
        normalize_states(torch.zeros(1, 1), norm, eps)  # validates norm/eps
        self.norm, self.eps = norm, eps

    @classmethod
    def for_model(cls, model: Any):
        """The metric with ``model``'s own normalisation (see :func:`model_normalization`)."""
        return cls(*model_normalization(model))

    def update(self, index: int, x: torch.Tensor) -> None:
        super().update(index, normalize_states(x, self.norm, self.eps))


class NormalizedTurningAngles(_Normalizing, TurningAngles):
    """:class:`~tlgeom.TurningAngles` on normalised states → ``[batch, pos, point-2]`` radians."""

    name = "normalized_turning_angles"


class NormalizedStepNorms(_Normalizing, StepNorms):
    """:class:`~tlgeom.StepNorms` on normalised states → ``[batch, pos, point-1]``."""

    name = "normalized_step_norms"


class NormalizedLengthToChord(_Normalizing, LengthToChord):
    """:class:`~tlgeom.LengthToChord` on normalised states → ``[batch, pos]``."""

    name = "normalized_length_to_chord"


class SequenceTurningAngles(StreamMetric):
    """Across-token turning angles, one layer at a time → ``[batch, point, pos-2]`` radians.

    Keeps only the ``[batch, pos-2]`` angles of each point. ``norm=None`` (raw) or a norm name.
    A metric sees activations, not the padding mask: for a right-padded batch pass ``mask``
    (``[batch, pos]``, True on real tokens, e.g. from ``tlgeom._compat.tokenize``) so that angles
    touching padding are NaN, as :func:`sequence_turning_angles` gives on a Trajectories.
    """

    name = "sequence_turning_angles"

    def __init__(self, norm: str | None = None, eps: float = 1e-5, mask: torch.Tensor | None = None):
        if norm is not None:
            normalize_states(torch.zeros(1, 1), norm, eps)
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 2):
            raise bad_arg("mask", mask, "a BoolTensor [batch, pos] (True on real tokens) or None")
        self.norm, self.eps, self.mask = norm, eps, mask

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.values: list[torch.Tensor | None] = [None] * n_points

    def update(self, index: int, x: torch.Tensor) -> None:
        if self.norm is not None:
            x = normalize_states(x, self.norm, self.eps)
        d = x[:, 1:] - x[:, :-1]
        a = angle_between(d[:, :-1], d[:, 1:])
        if self.mask is not None:
            m = self.mask.to(a.device)
            a = a.masked_fill(~(m[:, :-2] & m[:, 1:-1] & m[:, 2:]), float("nan"))
        self.values[index] = a

    def result(self) -> torch.Tensor:
        return torch.stack(self.values, dim=1)
