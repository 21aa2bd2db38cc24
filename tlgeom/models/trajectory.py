"""Recording each token's residual-stream trajectory through the layers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Bool, Float, Int

from tlgeom._args import check_dtype, check_points
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import Result, jsonable, new_axes
from tlgeom.models import _compat
from tlgeom.models._compat import takes_device


@dataclass
class Trajectories(Result):
    """Each token's residual stream at every trajectory point.

    Attributes:
        states: ``[batch, pos, point, d_model]`` in the model's dtype. Point 0 is the input of
            block 0 (embedding), point l the output of block l−1 (``points="resid"``: n_layers+1
            points); ``points="sublayer"`` interleaves the mid-block stream (2·n_layers+1).
        tokens: ``[batch, pos]`` token ids (padding filled with the pad id).
        mask: ``[batch, pos]`` True on real tokens, False on padding.
        str_tokens: per sequence, the decoded valid tokens.
        hook_names: the hook read for each point, in order.
        points: ``"resid"`` or ``"sublayer"``.
        point_labels: ``"embed"``, ``"L0"``, … (``"L0.mid"`` for sublayer points).
        forward_dtype: the dtype of the model's forward pass (``"float32"``, ``"bfloat16"``…); the
            states are only as exact as it, whatever ``states.dtype`` is.
    """

    states: Float[torch.Tensor, "batch pos point d_model"]
    tokens: Int[torch.Tensor, "batch pos"]
    mask: Bool[torch.Tensor, "batch pos"]
    str_tokens: list[list[str]]
    hook_names: list[str]
    points: str = "resid"
    point_labels: list[str] = field(default_factory=list)
    forward_dtype: str | None = None

    result_name = "trajectories"

    @property
    def n_points(self) -> int:
        return self.states.shape[2]

    def norms(self) -> Float[torch.Tensor, "batch pos point"]:
        """‖x‖ at every point (float64; NaN on padding)."""
        from tlgeom.geometry.curvature import as_states, safe_norm

        return safe_norm(as_states(self))

    def to_frame(self):
        """Tidy frame: one row per (batch, pos, point) with token, norm, step norm, turning angle."""
        import numpy as np
        import pandas as pd

        from tlgeom.geometry.curvature import step_norms, turning_angles

        B, P, N = self.states.shape[:3]
        nan = torch.full((B, P, 1), float("nan"), dtype=torch.float64)
        step = torch.cat([nan, step_norms(self).cpu()], dim=-1)
        turn = torch.cat([nan, turning_angles(self).cpu().rad2deg(), nan], dim=-1) if N >= 3 else nan.expand(B, P, N)
        b, p, i = np.meshgrid(np.arange(B), np.arange(P), np.arange(N), indexing="ij")
        valid = self.mask.cpu().numpy()[b, p]
        tok = np.array([toks + [""] * (P - len(toks)) for toks in self.str_tokens], dtype=object)[b, p]
        frame = pd.DataFrame(
            {
                "batch": b.ravel(),
                "pos": p.ravel(),
                "token": tok.ravel(),
                "point": i.ravel(),
                "label": np.asarray(self.point_labels, dtype=object)[i].ravel(),
                "hook": np.asarray(self.hook_names, dtype=object)[i].ravel(),
                "norm": self.norms().cpu().numpy().ravel(),
                "step_norm": step.numpy().ravel(),
                "turning_angle_deg": turn.numpy().ravel(),
            }
        )
        return frame[valid.ravel()].reset_index(drop=True)

    def headline(self) -> dict:
        """Sizes and the median residual norm ‖x‖ at the first and last point and median turning angle."""
        from tlgeom.geometry.curvature import turning_angles

        norms = self.norms()
        valid = self.mask.to(norms.device)
        first, last = norms[..., 0][valid], norms[..., -1][valid]
        angles = turning_angles(self).rad2deg() if self.n_points >= 3 else torch.empty(0, dtype=torch.float64)
        angles = angles[~torch.isnan(angles)]
        return jsonable(
            {
                "n_sequences": int(self.states.shape[0]),
                "n_tokens": int(valid.sum()),
                "n_points": int(self.n_points),
                "points": self.points,
                "d_model": int(self.states.shape[-1]),
                "median_norm_first": float(first.median()) if first.numel() else float("nan"),
                "median_norm_last": float(last.median()) if last.numel() else float("nan"),
                "median_turning_angle_deg": float(angles.median()) if angles.numel() else float("nan"),
            }
        )

    def summary(self) -> str:
        """Sizes, how the residual norm grows from the first to the last point, the median turn."""
        h = self.headline()

        def num(x: Any, fmt: str) -> str:
            return "undefined" if x is None else format(x, fmt)

        return (
            f"trajectories: {h['n_sequences']} sequence(s), {h['n_tokens']} tokens × {h['n_points']} points "
            f"({self.points}, d_model {h['d_model']}); median ‖x‖ {num(h['median_norm_first'], '.3g')} at "
            f"{self.point_labels[0] if self.point_labels else 'the first point'} → "
            f"{num(h['median_norm_last'], '.3g')} at "
            f"{self.point_labels[-1] if self.point_labels else 'the last point'}; median turning angle "
            f"{num(h['median_turning_angle_deg'], '.1f')}°"
        )

    def plot(self, ax=None, batch: int = 0):
        """Residual norm of each token of sequence ``batch`` across depth (one line per token); returns the Figure."""
        if isinstance(batch, bool) or not isinstance(batch, int) or not 0 <= batch < self.states.shape[0]:
            raise bad_arg("batch", batch, f"an int in [0, {self.states.shape[0]})")
        fig, ax = new_axes(ax, (8, 4))
        norms = self.norms()[batch].cpu()
        for p, tok in enumerate(self.str_tokens[batch]):
            ax.plot(range(self.n_points), norms[p], lw=0.8, alpha=0.7, label=repr(tok) if p < 12 else None)
        ax.set_xticks(range(self.n_points))
        ax.set_xticklabels(self.point_labels, rotation=90, fontsize=6)
        ax.set_ylabel("‖residual‖")
        ax.set_title("residual norm across depth")
        if len(self.str_tokens[batch]) <= 12:
            ax.legend(fontsize=6)
        return fig


@takes_device
def record_trajectories(model: Any, inputs: Any, points: str = "resid", *, dtype: Any = None) -> Trajectories:
    """Run ``model`` once and record every token's residual stream at each trajectory point.

    Only the trajectory hooks are attached (no full ``run_with_cache``); each hook copies its
    activation into one preallocated ``[batch, pos, point, d_model]`` tensor, and every hook is
    removed when the pass ends, exceptions included.

    Args:
        model: a TransformerBridge, HookedTransformer or HookedEncoder.
        inputs: a string, a list of strings (right-padded batch) or token ids ``[pos]`` /
            ``[batch, pos]``.
        points: ``"resid"`` (n_layers+1 points) or ``"sublayer"`` (2·n_layers+1).
        dtype: dtype of the stored states (a float torch.dtype or its name, e.g. ``"float64"``);
            default the model's. A bf16/fp16 model warns (:class:`tlgeom.PrecisionWarning`).

    Returns:
        A :class:`Trajectories`.

    Raises:
        TlgeomError: not a TransformerLens model, bad ``points`` or ``dtype``, empty or over-long input.
    """
    info = _compat.check_model(model)
    names = _compat.point_hook_names(model, check_points(points), info)
    if dtype is not None:
        dtype = check_dtype(dtype)
    tokens, mask = _compat.tokenize(model, inputs, info)
    out: dict[str, torch.Tensor] = {}

    def make_hook(i: int):
        def hook(act, hook=None):
            if act.dim() != 3 or act.shape[:2] != tokens.shape:
                raise TlgeomError(
                    f"hook point {names[i]!r} gave an activation of shape {tuple(act.shape)}, not "
                    f"[batch, pos, d_model] = [{tokens.shape[0]}, {tokens.shape[1]}, d_model]"
                )
            if "states" not in out:
                B, P, D = act.shape
                out["states"] = torch.empty((B, P, len(names), D), dtype=dtype or act.dtype, device=act.device)
            out["states"][:, :, i] = act.detach()
            return act

        return hook

    _compat.run_with_point_hooks(model, tokens, mask, info, [(n, make_hook(i)) for i, n in enumerate(names)])
    return Trajectories(
        states=out["states"],
        tokens=tokens,
        mask=mask.to(out["states"].device),
        str_tokens=_compat.str_tokens(model, tokens, mask),
        hook_names=names,
        points=points,
        point_labels=_compat.point_labels(info.n_layers, points),
        forward_dtype=_compat.dtype_name(_compat.forward_dtype(model)),
    )
