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

from typing import Any, cast

import torch
from jaxtyping import Float

from tlgeom._args import check_points
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom.geometry.curvature import angle_between, chord_ratio, normalize_states, safe_norm, to_space
from tlgeom.models import _compat
from tlgeom.models._compat import takes_device
from tlgeom.models.conventions import model_normalization


class StreamMetric:
    """Base class. Subclasses implement :meth:`update` and :meth:`result`.

    ``update(index, x)`` receives point ``index`` as a float64 tensor ``[batch, pos, d_model]``.

    Attributes:
        name: the key of the metric's result in :func:`stream`'s output. Default the class's
            ``name``; pass ``name=`` to run two metrics of one class in a single pass.
        per_token: True when :meth:`result` is ``[batch, pos, ...]`` (one entry per token), so that
            :func:`stream` fills padded positions with NaN. Declared, never guessed from shapes.
        min_points: the fewest trajectory points the metric needs (checked before the pass).
        min_positions: the fewest token positions it needs (checked before the pass).
    """

    name = "metric"
    per_token = False
    min_points = 1
    min_positions = 1

    def __init__(self, *, name: str | None = None):
        if name is not None:
            if not isinstance(name, str) or not name.strip() or name in ("tokens", "mask", "forward_dtype"):
                raise bad_arg("name", name, "a non-empty string other than 'tokens', 'mask', 'forward_dtype'")
            self.name = name

    def start(self, n_points: int) -> None:
        """Called before the forward pass (resets state); refuses too few trajectory points."""
        if n_points < self.min_points:
            raise TlgeomError(
                f"model: {type(self).__name__} needs at least {self.min_points} trajectory points, this model "
                f"gives {n_points} (n_layers={n_points - 1} with points='resid'); use points='sublayer' "
                "or a model with more layers"
            )
        self.n_points = n_points
        self._seen: set[int] = set()

    def check_positions(self, n_positions: int) -> None:
        """Refuse inputs with fewer than :attr:`min_positions` token positions (before any pass)."""
        if n_positions < self.min_positions:
            raise TlgeomError(
                f"inputs: {type(self).__name__} needs at least {self.min_positions} token positions, got "
                f"{n_positions}; pass a longer text"
            )

    def _require_run(self) -> None:
        """TlgeomError unless a whole forward pass has reached this metric since :meth:`start`."""
        seen = getattr(self, "_seen", None)
        if seen is None or len(seen) < getattr(self, "n_points", 1):
            done = "no" if not seen else f"only {len(seen)} of {self.n_points}"
            raise TlgeomError(
                f"{type(self).__name__}.result(): {done} trajectory points have reached this metric; run it "
                "first: tlgeom.stream(model, inputs, [metric]) or "
                "`with model.hooks(fwd_hooks=metric.hooks(model)): model(tokens)`"
            )

    def update(self, index: int, x: Float[torch.Tensor, "batch pos d_model"]) -> None:
        raise NotImplementedError

    def bind_mask(self, mask: torch.Tensor | None) -> None:
        """:func:`stream` hands each metric the padding mask of its pass (None after it); default: ignored."""

    def result(self) -> Any:
        raise NotImplementedError

    def hooks(self, model: Any, points: str = "resid") -> list[tuple[str, Any]]:
        """``(hook_name, fn)`` pairs for ``model.hooks`` / ``run_with_hooks``; calls :meth:`start`."""
        names = _compat.point_hook_names(model, check_points(points))
        self.start(len(names))

        def make(i: int):
            def hook(act, hook=None):
                self.update(i, act.detach().to(torch.float64))
                self.__dict__.setdefault("_seen", set()).add(i)
                return act

            return hook

        return [(n, make(i)) for i, n in enumerate(names)]


class StepMetric(StreamMetric):
    """Keeps the first point, the previous point and the previous step; calls :meth:`step`."""

    per_token = True
    min_points = 2
    first: torch.Tensor | None
    prev: torch.Tensor | None
    prev_step: torch.Tensor | None

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.first = self.prev = self.prev_step = None

    def update(self, index: int, x: torch.Tensor) -> None:
        if index == 0:
            self.first = x
        else:
            assert self.prev is not None  # points arrive in order: index 0 came first
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
        self.values.append(_norm(delta))

    def result(self) -> torch.Tensor:
        self._require_run()
        return torch.stack(self.values, dim=-1)


class TurningAngles(StepMetric):
    """Turning angle between consecutive layer steps → ``[batch, pos, point-2]`` radians."""

    name = "turning_angles"
    min_points = 3

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.values: list[torch.Tensor] = []

    def step(self, index, delta, prev_delta):
        if prev_delta is not None:
            self.values.append(angle_between(prev_delta, delta))

    def result(self) -> torch.Tensor:
        self._require_run()
        return torch.stack(self.values, dim=-1)


class LengthToChord(StepMetric):
    """``Σ‖Δ_l‖ / ‖x_last − x_0‖`` per token → ``[batch, pos]`` (running sum, two points kept)."""

    name = "length_to_chord"

    length: torch.Tensor | None

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.length = None

    def step(self, index, delta, prev_delta):
        n = _norm(delta)
        self.length = n if self.length is None else self.length + n

    def result(self) -> torch.Tensor:
        self._require_run()
        assert self.length is not None and self.prev is not None and self.first is not None  # a complete run
        return chord_ratio(self.length, _norm(self.prev - self.first))


def _norm(x: torch.Tensor) -> torch.Tensor:
    """``‖x‖`` over the last dim without overflow (see :func:`tlgeom.geometry.curvature.safe_norm`)."""
    return safe_norm(x)


@takes_device
def stream(
    model: Any,
    inputs: Any,
    metrics: Any = None,
    points: str = "resid",
) -> dict[str, Any]:
    """One forward pass that streams every trajectory point into ``metrics``.

    Args:
        model: a TransformerLens model.
        inputs: a string, list of strings or token ids (as :func:`record_trajectories`).
        metrics: StreamMetric instances with distinct names (default: step norms, turning angles,
            length-to-chord); two of one class need ``name=``.
        points: ``"resid"`` or ``"sublayer"``.

    Returns:
        ``{metric.name: metric.result(), "mask": BoolTensor [batch, pos], "tokens": …,
        "forward_dtype": the model's forward dtype, e.g. "float32"}``; padded positions are NaN in the result of
        every metric with ``per_token = True``. A bf16/fp16 model warns
        (:class:`tlgeom.PrecisionWarning`).

    Raises:
        TlgeomError: bad ``model`` / ``inputs`` / ``points``; ``metrics`` not StreamMetrics or two with
            one name; too few trajectory points (a 1-layer model with ``points="resid"`` for turning
            angles) or positions for a metric. All checked before the forward pass.
    """
    info = _compat.check_model(model)
    check_points(points)
    metrics = list(metrics) if metrics is not None else [StepNorms(), TurningAngles(), LengthToChord()]
    if not metrics or not all(isinstance(m, StreamMetric) for m in metrics):
        raise bad_arg("metrics", metrics, "a non-empty list of tlgeom.StreamMetric instances")
    names = [m.name for m in metrics]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise bad_arg(
            "metrics", names, f"distinct metric names (pass name= to tell apart two metrics named {dup[0]!r})"
        )
    tokens, mask = _compat.tokenize(model, inputs, info)
    for m in metrics:
        m.check_positions(tokens.shape[-1])
    stream_tokens(model, tokens, mask, metrics, points, info)
    out: dict[str, Any] = {
        "tokens": tokens,
        "mask": mask,
        "forward_dtype": _compat.dtype_name(_compat.forward_dtype(model)),
    }
    for m in metrics:
        r = m.result()
        if m.per_token and isinstance(r, torch.Tensor):
            if r.dim() < 2 or r.shape[:2] != mask.shape:
                raise TlgeomError(
                    f"metrics: {type(m).__name__} declares per_token results but returned shape "
                    f"{tuple(r.shape)}, not [batch, pos, ...] = {tuple(mask.shape)}"
                )
            pad = ~mask.to(r.device)
            r = r.masked_fill(pad.reshape(pad.shape + (1,) * (r.dim() - 2)), float("nan"))
        out[m.name] = r
    return out


def stream_tokens(
    model: Any, tokens: torch.Tensor, mask: torch.Tensor, metrics: list[StreamMetric], points: str, info: Any
) -> None:
    """The one streaming forward pass (used by :func:`stream` and the corpus engine): ``tokens`` ``[batch, pos]``
    (``mask`` True on real tokens) through ``model`` with every metric's hooks, each metric told the mask;
    the hooks are removed and the masks unbound whatever happens. Arguments are trusted (checked by the
    caller)."""
    hooks = [h for m in metrics for h in m.hooks(model, points)]
    for m in metrics:
        m.bind_mask(mask)
    try:
        _compat.run_with_point_hooks(model, tokens, mask, info, hooks)
    finally:
        for m in metrics:
            m.bind_mask(None)


class _Normalizing(StepMetric):
    def __init__(self, norm: str = "rms", eps: float = 1e-5, *, name: str | None = None):
        normalize_states(torch.zeros(1, 1), norm, eps)  # validates norm/eps
        super().__init__(name=name)
        self.norm, self.eps = norm, eps

    @classmethod
    def for_model(cls, model: Any):
        """The metric with ``model``'s own normalisation (see :func:`model_normalization`)."""
        return cls(*model_normalization(model))

    def update(self, index: int, x: torch.Tensor) -> None:
        super().update(index, to_space(x, "normalized", self.norm, self.eps))


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
    Angles touching padding are NaN, as :func:`sequence_turning_angles` gives on a Trajectories:
    :func:`stream` hands the metric its padding mask; used directly through :meth:`hooks`, pass
    ``mask`` (``[batch, pos]``, True on real tokens, e.g. from ``tlgeom.models._compat.tokenize``).
    The result is ``[batch, point, pos-2]``, not per token (``per_token = False``): :func:`stream`
    masks it through the angles themselves. Needs at least 3 positions (a TlgeomError otherwise).
    """

    name = "sequence_turning_angles"
    min_positions = 3

    def __init__(
        self, norm: str | None = None, eps: float = 1e-5, mask: torch.Tensor | None = None, *, name: str | None = None
    ):
        if norm is not None:
            normalize_states(torch.zeros(1, 1), norm, eps)
        if mask is not None and (not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.dim() != 2):
            raise bad_arg("mask", mask, "a BoolTensor [batch, pos] (True on real tokens) or None")
        super().__init__(name=name)
        self.norm, self.eps, self.mask = norm, eps, mask
        self._run_mask: torch.Tensor | None = None

    def bind_mask(self, mask: torch.Tensor | None) -> None:
        self._run_mask = mask

    def start(self, n_points: int) -> None:
        super().start(n_points)
        self.values: list[torch.Tensor | None] = [None] * n_points

    def update(self, index: int, x: torch.Tensor) -> None:
        self.check_positions(x.shape[1])
        if self.norm is not None:
            x = to_space(x, "normalized", self.norm, self.eps)
        d = x[:, 1:] - x[:, :-1]
        a = angle_between(d[:, :-1], d[:, 1:])
        mask = self.mask if self.mask is not None else self._run_mask
        if mask is not None:
            m = mask.to(a.device)
            a = a.masked_fill(~(m[:, :-2] & m[:, 1:-1] & m[:, 2:]), float("nan"))
        self.values[index] = a

    def result(self) -> torch.Tensor:
        self._require_run()
        return torch.stack(cast(list[torch.Tensor], self.values), dim=1)  # a complete run filled every slot
