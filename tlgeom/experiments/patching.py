"""Which (layer, position) carries a context edit's deflection: batched activation patching.

For a :class:`~tlgeom.ContextEdit` the *edited* run is the corrupted run of activation patching
and the *clean* run the source: for every cell — a layer and a position of the edited text
(and a head, for ``component="head"``) — the clean activation at that cell is written into the
edited run, and we measure how much of the target's final-point deflection that restores.
With ``c`` / ``e`` / ``p`` the target's state at the last trajectory point in the clean, edited
and patched runs:

* ``metric="restored"`` (default): ``1 − ‖p − c‖ / ‖e − c‖`` (1: the clean state is fully
  restored; 0: no effect; < 0: pushed further away);
* ``metric="projection"``: ``⟨e − p, e − c⟩ / ‖e − c‖²`` (the share of the deflection vector undone).

Components (the hook patched at layer l): ``"resid_pre"`` → ``blocks.l.hook_resid_pre``
(``[layer, pos]``), ``"attn_out"`` → ``blocks.l.hook_attn_out``, ``"mlp_out"`` →
``blocks.l.hook_mlp_out`` (``[layer, pos]``), ``"head"`` → each head's output before ``W_O``,
``blocks.l.attn.hook_z`` (``[layer, pos, head]``). These are the hooks TransformerLens' own
``get_act_patch_resid_pre`` / ``_attn_out`` / ``_mlp_out`` / ``_attn_head_out_by_pos`` patch,
so with the same metric the results agree with them (tested to 1e-5).

Positions. TransformerLens needs clean and corrupted prompts of equal length and patches
position by position. Here the texts may differ in length (insertions, deletions): each edited
position is paired with its clean counterpart by token alignment (:func:`~tlgeom.experiments.edits.align_token_ids`
with ``pair_replaced=True``: difflib over token ids, matching blocks pair up, and a replaced
block of the same length on both sides pairs position by position). Only paired positions are
patched; inserted tokens and tokens of unequal replaced blocks have no clean counterpart and
are NaN; deleted clean tokens have no place in the edited run. For a same-length substitution
this is exactly TransformerLens' position-by-position patching.

Batching. Every patched copy of the edited run is one row of a batch, so one forward pass
evaluates ``batch_size`` cells; hooks write each row's clean value at its own (layer, position).
``batch_size`` defaults to ``clamp(token_budget // n_tokens, 1, 512)`` with ``token_budget =
2048``: a forward never holds more than ~2048 token positions, so memory is bounded whatever the
sequence length (measured on a SmolLM2 TransformerBridge: ≈ 0.3 MB per token position during a
pass, ≈ 0.6 GB above the 0.55 GB model for a full batch; a 60-token pair peaks at 1.2 GiB RSS
including the model, see ``benchmarks/bench_patching.py``).

Pruning. Cells that are exactly 0 without running are skipped (``prune=True``): in a decoder, positions after the target (causal masking: they cannot reach
it) and cells whose clean and edited activations are bit-for-bit equal (the patch is a no-op,
e.g. the shared prefix before the edit). In a decoder the run is also truncated after the
target, which leaves every state up to the target unchanged. Every pass stops at the last
trajectory point (a hook raises there), so no logits are ever computed: with them a
2048-position SmolLM2 batch would add 0.4 GB of ``[batch, pos, d_vocab]`` logits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from jaxtyping import Float

from tlgeom._args import check_bool, check_layers
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import Result, jsonable, new_axes
from tlgeom.experiments.edits import ContextEdit, align_token_ids, resolve_edit, short_text
from tlgeom.models import _compat
from tlgeom.models._compat import takes_device

COMPONENTS = {
    "resid_pre": "blocks.{l}.hook_resid_pre",
    "attn_out": "blocks.{l}.hook_attn_out",
    "mlp_out": "blocks.{l}.hook_mlp_out",
    "head": "blocks.{l}.attn.hook_z",
}
METRICS = ("restored", "projection")
TOKEN_BUDGET = 2048
MAX_BATCH = 512
#: status codes of each cell
RUN, CAUSAL, NOOP, UNPAIRED = 0, 1, 2, 3
STATUS_NAMES = {RUN: "run", CAUSAL: "causal_zero", NOOP: "noop_zero", UNPAIRED: "unpaired"}


def restored_fraction(
    patched: Float[torch.Tensor, "... d_model"],
    clean: Float[torch.Tensor, " d_model"],
    edited: Float[torch.Tensor, " d_model"],
    metric: str = "restored",
) -> torch.Tensor:
    """How much of the deflection ``e − c`` a patched state ``p`` undoes (float64, any leading dims).

    ``"restored"``: ``1 − ‖p − c‖ / ‖e − c‖``; ``"projection"``: ``⟨e − p, e − c⟩ / ‖e − c‖²``.
    Both are 0 for ``p = e`` and 1 for ``p = c``.
    """
    if metric not in METRICS:
        raise bad_arg("metric", metric, f"one of {METRICS}")
    p, c, e = (t.to(torch.float64) for t in (patched, clean, edited))
    dev = e - c
    if metric == "restored":
        return 1 - torch.linalg.vector_norm(p - c, dim=-1) / torch.linalg.vector_norm(dev)
    return ((e - p) * dev).sum(-1) / (dev * dev).sum()


def default_batch_size(n_tokens: int, token_budget: int = TOKEN_BUDGET, max_batch: int = MAX_BATCH) -> int:
    """Patched copies per forward pass: ``clamp(token_budget // n_tokens, 1, max_batch)``."""
    return int(max(1, min(max_batch, token_budget // max(int(n_tokens), 1))))


@dataclass
class PatchAttribution(Result):
    """Restored fraction of the target's final deflection for every patched cell.

    Attributes:
        values: ``[layer, pos]`` (``[layer, pos, head]`` for ``component="head"``) float64 over the
            *edited* text's positions; NaN where the position has no clean counterpart.
        status: same shape, int8: 0 run, 1 zero by causality (decoder, after the target),
            2 zero because clean and edited activations are equal, 3 unpaired (NaN).
        component, metric: what was patched and measured.
        layers: the layer index of each row of ``values``.
        hook_names: the hook patched for each row.
        str_tokens, clean_str_tokens: tokens of the edited and of the clean text.
        clean_positions: ``[pos]`` the clean position paired with each edited position (−1: none).
        target_pos, clean_target_pos: the target's position in the edited / clean text.
        clean_final, edited_final: the target's state at the last trajectory point, float64.
        final_distance: ``‖edited_final − clean_final‖``.
        batch_size, n_batches, n_run: patched copies per pass, passes, cells actually run.
    """

    values: torch.Tensor
    status: torch.Tensor
    component: str
    metric: str
    layers: list[int]
    hook_names: list[str]
    str_tokens: list[str]
    clean_str_tokens: list[str]
    clean_positions: torch.Tensor
    target_pos: int
    clean_target_pos: int
    clean_final: torch.Tensor
    edited_final: torch.Tensor
    final_distance: float
    batch_size: int
    n_batches: int
    n_run: int
    edit: ContextEdit | None = field(default=None, repr=False)
    forward_dtype: str | None = None  # the model's forward dtype ("float32", "bfloat16"…)

    result_name = "patching"

    def headline(self) -> dict:
        """Cells run, passes, and the cell restoring the largest fraction of the final deflection."""
        v = self.values
        h = {
            "component": self.component,
            "metric": self.metric,
            "n_cells": int(v.numel()),
            "n_run": self.n_run,
            "n_batches": self.n_batches,
            "final_distance": self.final_distance,
            "best_layer": None,
            "best_pos": None,
            "best_head": None,
            "best_token": None,
            "best_restored": float("nan"),
        }
        if bool((~torch.isnan(v)).any()):
            idx = np.unravel_index(int(torch.nan_to_num(v, nan=-np.inf).flatten().argmax()), tuple(v.shape))
            h.update(
                best_layer=self.layers[int(idx[0])],
                best_pos=int(idx[1]),
                best_token=self.str_tokens[int(idx[1])],
                best_restored=float(v[idx]),
            )
            if v.dim() == 3:
                h["best_head"] = int(idx[2])
        return jsonable(h)

    def summary(self) -> str:
        h = self.headline()
        line = (
            f"patching ({h['component']}, {h['metric']}): {h['n_run']} of {h['n_cells']} cells run in "
            f"{h['n_batches']} batched pass(es); final deflection of the target {h['final_distance']:.3g}"
        )
        if h["best_layer"] is None:
            return line + "; no cell has a defined restored fraction"
        head = f", head {h['best_head']}" if h["best_head"] is not None else ""
        return line + (
            f"; largest restored fraction {h['best_restored']:.2f} at layer {h['best_layer']}{head}, token "
            f"{h['best_token']!r} (pos {h['best_pos']})"
        )

    def to_frame(self):
        """One row per cell: layer, pos, token, clean_pos, [head], value, status."""
        import pandas as pd

        shape = tuple(self.values.shape)
        idx = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
        cols = {
            "layer": np.asarray(self.layers)[idx[0]].ravel(),
            "pos": idx[1].ravel(),
            "token": np.asarray(self.str_tokens, dtype=object)[idx[1]].ravel(),
            "clean_pos": self.clean_positions.numpy()[idx[1]].ravel(),
        }
        if len(shape) == 3:
            cols["head"] = idx[2].ravel()
        cols["value"] = self.values.numpy().ravel()
        cols["status"] = np.vectorize(STATUS_NAMES.get, otypes=[object])(self.status.numpy().ravel())
        frame = pd.DataFrame(cols)
        frame.insert(0, "component", self.component)
        return frame

    def plot(self, ax=None, pos: int | None = None, cmap: str = "RdBu_r"):
        """Heatmap: layer × position with token labels (``component="head"``: layer × head at ``pos``,
        default the target's position). The target's column is outlined; NaN cells are blank.
        Returns the Figure."""
        import matplotlib.pyplot as plt

        fig, ax = new_axes(ax, (max(4.0, 0.45 * len(self.str_tokens) + 2), max(3.0, 0.18 * len(self.layers) + 1.5)))
        if self.values.dim() == 3:
            pos = self.target_pos if pos is None else pos
            if not isinstance(pos, int) or not 0 <= pos < self.values.shape[1]:
                raise bad_arg("pos", pos, f"a position in [0, {self.values.shape[1]})")
            data = self.values[:, pos, :].numpy()
            xlabels = [f"H{h}" for h in range(data.shape[1])]
            title = f"head outputs at {self.str_tokens[pos]!r} (pos {pos})"
        else:
            data = self.values.numpy()
            xlabels = [repr(t)[1:-1] for t in self.str_tokens]
            title = f"{self.component} patching"
        lim = np.nanmax(np.abs(data)) if np.isfinite(data).any() else 1.0
        im = ax.imshow(data, aspect="auto", cmap=cmap, vmin=-lim, vmax=lim, origin="lower", interpolation="nearest")
        ax.set_xticks(range(data.shape[1]))
        ax.set_xticklabels(xlabels, rotation=90, fontsize=7)
        step = max(1, len(self.layers) // 15)
        ax.set_yticks(range(0, len(self.layers), step))
        ax.set_yticklabels([str(self.layers[i]) for i in range(0, len(self.layers), step)], fontsize=7)
        ax.set_ylabel("layer")
        if self.values.dim() == 2:
            ax.add_patch(plt.Rectangle((self.target_pos - 0.5, -0.5), 1, len(self.layers), fill=False, lw=1.5, ec="k"))
        ax.set_title(f"{title}: {self.metric} fraction of the target's deflection", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.04)
        return fig


class _StopForward(Exception):
    """Raised by the hook on the last trajectory point: nothing after it is needed."""


def _run_until(model, tokens, info, hooks, final: str, on_final) -> None:
    """Forward ``tokens`` with ``hooks`` and stop right after ``final`` fires.

    ``on_final(act)`` reads the last trajectory point; raising there skips the final norm and the
    unembedding (whose ``[batch, pos, d_vocab]`` logits would dominate memory: 0.4 GB for 2048
    SmolLM2 positions). The hooks context removes every hook on this path too.
    """

    def stop(act, hook=None):
        on_final(act)
        raise _StopForward

    mask = torch.ones_like(tokens, dtype=torch.bool)
    try:
        _compat.run_with_point_hooks(model, tokens, mask, info, hooks + [(final, stop)])
    except _StopForward:
        return
    raise TlgeomError(f"hook point {final!r} did not fire during the forward pass")  # pragma: no cover


def _capture(model, tokens, info, names, final) -> dict[str, torch.Tensor]:
    """One forward pass of ``tokens`` [pos]; the activations at ``names`` and ``final`` (batch row 0)."""
    out: dict[str, torch.Tensor] = {}
    row0 = lambda act: act[0].detach().clone()  # noqa: E731
    _run_until(
        model,
        tokens[None],
        info,
        _compat.storing_hooks(out, names, row0),
        final,
        lambda act: out.__setitem__(final, row0(act)),
    )
    _compat.check_fired(model, [*names, final], set(out))
    return out


@takes_device
def patch_attribution(
    model: Any,
    clean: str | ContextEdit,
    edited: str | None = None,
    target: str | tuple[int, int] | None = None,
    *,
    occurrence: int | tuple[int, int] | None = None,
    subtoken: str = "last",
    component: str = "resid_pre",
    metric: str = "restored",
    layers: int | Sequence[int] | None = None,
    batch_size: Any = None,
    token_budget: Any = TOKEN_BUDGET,
    prune: Any = True,
    progress: bool = False,
) -> PatchAttribution:
    """Patch the clean activation at every (layer, position[, head]) into the edited run, batched.

    Args:
        model: a TransformerBridge, HookedTransformer or HookedEncoder.
        clean: the clean text, or a :class:`ContextEdit` (then ``edited``/``target``/``occurrence`` are unused).
        edited: the edited text. target: the target word or its character span in the clean text.
        occurrence, subtoken: as in :func:`tlgeom.experiments.eclipse.deflection` (last sub-token by default).
        component: ``"resid_pre"``, ``"attn_out"``, ``"mlp_out"`` or ``"head"`` (see module docs).
        metric: ``"restored"`` or ``"projection"`` (see :func:`restored_fraction`).
        layers: None (all), a layer index or a sequence of distinct layer indices to sweep (negative
            counts from the end; swept in increasing order).
        batch_size: patched copies per forward pass; default :func:`default_batch_size` of the
            run length with ``token_budget``.
        prune: skip cells that are exactly 0 without running them (see module docs).
        progress: show a tqdm progress bar.

    Returns:
        A :class:`PatchAttribution`; ``.plot()`` draws the layer × position heatmap.

    Raises:
        TlgeomError: bad arguments, a target absent/ambiguous in either text, or an edit that does
            not move the target's final state (nothing to attribute).
    """
    info = _compat.check_model(model)
    if component not in COMPONENTS:
        raise bad_arg("component", component, f"one of {tuple(COMPONENTS)}")
    if metric not in METRICS:
        raise bad_arg("metric", metric, f"one of {METRICS}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise bad_arg("batch_size", batch_size, "None or an int >= 1")
    if isinstance(token_budget, bool) or not isinstance(token_budget, int) or token_budget < 1:
        raise bad_arg("token_budget", token_budget, "an int >= 1 (token positions per forward pass)")
    layers = check_layers(layers, info.n_layers)
    check_bool("prune", prune)
    check_bool("progress", progress)
    if isinstance(clean, ContextEdit):
        edit = clean
    else:
        if target is None:
            raise bad_arg("target", None, "the target word or its (start, end) span in the clean text")
        edit = ContextEdit(clean, edited, target, occurrence=occurrence)  # type: ignore[arg-type]
    r = resolve_edit(model, edit, subtoken, info)
    names = [COMPONENTS[component].format(l=l) for l in layers]
    _compat.check_hook_names(model, names)
    final = _compat.point_hook_names(model, "resid", info)[-1]

    acts_c = _capture(model, r.clean_tokens, info, names, final)
    acts_e = _capture(model, r.edited_tokens, info, names, final)
    tpos, ctpos = r.edited_pos, r.clean_pos
    x_c = acts_c[final][ctpos].to(torch.float64).cpu()
    x_e = acts_e[final][tpos].to(torch.float64).cpu()
    dist = float(torch.linalg.vector_norm(x_e - x_c))
    if not dist > 1e-6 * float(torch.linalg.vector_norm(x_c)):
        raise TlgeomError(
            f"edited={short_text(edit.edited)!r}: the edit does not move the target's final state "
            f"(‖e − c‖ = {dist:.3g}, ‖c‖ = {float(torch.linalg.vector_norm(x_c)):.3g}); there is no "
            "deflection to attribute (e.g. an edit after the target in a decoder)"
        )

    P = int(r.edited_tokens.numel())
    pair = align_token_ids(r.edited_tokens, r.clean_tokens, pair_replaced=True)  # edited → clean
    n_heads = int(acts_e[names[0]].shape[-2]) if component == "head" else None
    shape = (len(layers), P) + ((n_heads,) if n_heads else ())
    status = torch.zeros(shape, dtype=torch.int8)
    status[:, pair < 0] = UNPAIRED
    decoder = not info.encoder
    if prune:
        if decoder:
            after = torch.arange(P) > tpos
            status[:, after & (pair >= 0)] = CAUSAL
        valid = (pair >= 0).nonzero().flatten()
        for li, name in enumerate(names):  # bit-for-bit equal clean and edited activations: a no-op
            same = (acts_e[name][valid] == acts_c[name][pair[valid]]).flatten(start_dim=2 if n_heads else 1).all(-1)
            cur = status[li, valid]
            status[li, valid] = torch.where(same.cpu() & (cur == RUN), torch.tensor(NOOP, dtype=torch.int8), cur)
    values = torch.full(shape, float("nan"), dtype=torch.float64)
    values[(status == CAUSAL) | (status == NOOP)] = 0.0
    cells = (status == RUN).nonzero()  # [n, 2 or 3]: layer index, pos, (head)

    run_tokens = r.edited_tokens[: tpos + 1] if (decoder and prune) else r.edited_tokens
    n_tok = int(run_tokens.numel())
    bs = batch_size or default_batch_size(n_tok, token_budget)
    n_batches = -(-len(cells) // bs)
    from tqdm import tqdm

    bar = tqdm(total=len(cells), disable=not progress, desc=f"patching {component}", unit="patch", leave=False)
    try:
        for s in range(0, len(cells), bs):
            chunk = cells[s : s + bs]
            B = len(chunk)
            got: dict[str, torch.Tensor] = {}
            hooks = []
            for li in chunk[:, 0].unique().tolist():
                sel = (chunk[:, 0] == li).nonzero().flatten()
                rows, pos = sel, chunk[sel, 1]
                src = acts_c[names[li]]
                if n_heads:
                    heads = chunk[sel, 2]
                    vals = src[pair[pos], heads]

                    def patch_heads(act, hook=None, rows=rows, pos=pos, heads=heads, vals=vals):
                        act[rows.to(act.device), pos.to(act.device), heads.to(act.device)] = vals.to(act.dtype)
                        return act

                    hook: Callable[..., torch.Tensor] = patch_heads
                else:
                    vals = src[pair[pos]]

                    def patch_positions(act, hook=None, rows=rows, pos=pos, vals=vals):
                        act[rows.to(act.device), pos.to(act.device)] = vals.to(act.dtype)
                        return act

                    hook = patch_positions

                hooks.append((names[li], hook))
            _run_until(
                model,
                run_tokens[None].expand(B, -1),
                info,
                hooks,
                final,
                lambda act, got=got: got.__setitem__("x", act[:, tpos].detach().to(torch.float64).cpu()),
            )
            vals_out = restored_fraction(got["x"], x_c, x_e, metric)
            values[tuple(chunk.T)] = vals_out
            bar.update(B)
    finally:
        bar.close()
    return PatchAttribution(
        forward_dtype=_compat.dtype_name(_compat.forward_dtype(model)),
        values=values,
        status=status,
        component=component,
        metric=metric,
        layers=layers,
        hook_names=names,
        str_tokens=r.edited_str_tokens,
        clean_str_tokens=r.clean_str_tokens,
        clean_positions=pair,
        target_pos=tpos,
        clean_target_pos=ctpos,
        clean_final=x_c,
        edited_final=x_e,
        final_distance=dist,
        batch_size=bs,
        n_batches=n_batches,
        n_run=len(cells),
        edit=edit,
    )
