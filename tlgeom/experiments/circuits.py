"""QK / OV singular directions as token key-value stores (Traveling Words, Molina 2023, §4).

For block l and head h (TransformerLens convention: row vectors, ``x W``):

* ``W_QK = W_Q W_Kᵀ / √d_head``: a query x_q attends to a key x_k with score ``x_q W_QK x_kᵀ``
  (the bilinear part of the attention score; the biases b_Q, b_K and, on rotary models, the
  position-dependent rotation are left out: on a rotary model W_QK is the score at relative
  position 0).
* ``W_OV = W_V W_O``: a key x_k read by the head writes ``x_k W_OV`` into the residual stream
  (the value bias and b_O are left out).

Both are rank ≤ d_head matrices of size d_model × d_model. They are never formed: TransformerLens'
``model.QK`` / ``model.OV`` are :class:`~transformer_lens.FactoredMatrix` es
``[layer, head, d_model, d_model]`` (grouped-query models expanded to every query head: head h
uses key/value head ``h // (n_heads / n_key_value_heads)``), and ``FactoredMatrix.svd()``
decomposes ``A B`` from the SVDs of A and B and of a d_head × d_head core, so no d × d matrix
is built. tlgeom runs it in float64: ``W = U diag(S) Vᵀ`` with U, V ``[d_model, d_head]``.

Each singular direction i is read as a key → value pair and mapped to its nearest tokens by
dot product (as the paper's scripts): QK, left u_i and right v_i against LN(E); OV, left u_i
against LN(E) and right v_i against E. ``LN(E)`` is the embedding matrix passed through the
normalisation (with its γ, β) that feeds block l's attention: ``blocks.l.ln1`` on pre-LN
decoders, the embedding LayerNorm (l = 0) or ``blocks.{l−1}.ln2`` on post-LN BERT.

**Sign convention** (as the paper's ``svd_analysis.py``): an SVD fixes each pair (u_i, v_i)
only up to a common sign. For the first ``k`` directions (those mapped to tokens) the sign is
chosen so that ``max_t ⟨v_i, R_t⟩ ≥ max_t ⟨−v_i, R_t⟩``, R the right-side reference (QK: LN(E);
OV: E), i.e. the right vector points towards the token it is most aligned with; u_i gets the
same sign, so ``U diag(S) Vᵀ`` is unchanged. The remaining directions (not compared with the
vocabulary, to avoid a vocabulary-wide product for every direction) follow ``svd_flip``'s rule:
the largest-magnitude coordinate of v_i is positive. Both rules depend only on the matrix, not
on the SVD routine's arbitrary signs, so results are stable across calls and library versions
(up to exact ties).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int

from tlgeom._args import renamed
from tlgeom._errors import TlgeomError, bad_arg
from tlgeom._result import Result, jsonable, new_panels
from tlgeom.geometry.sphere import normalize
from tlgeom.models import _compat
from tlgeom.models._compat import takes_device
from tlgeom.models.arch import architecture, require
from tlgeom.models.conventions import NormLayer, attention_input_norm

CIRCUITS = ("QK", "OV")


# ----------------------------------------------------------------------------- pure functions


def cumulative_energy(S: Float[torch.Tensor, "... rank"]) -> Float[torch.Tensor, "... rank"]:
    """Fraction of ``‖W‖_F² = Σ s_i²`` captured by the top r directions: ``Σ_{i≤r} s_i² / Σ s_i²``."""
    e = S.double().pow(2)
    total = e.sum(-1, keepdim=True)
    return e.cumsum(-1) / torch.where(total > 0, total, torch.ones_like(total))


def rank_at_energy(S: Float[torch.Tensor, "... rank"], energy: float = 0.99) -> Int[torch.Tensor, ...]:
    """Smallest r with ``Σ_{i≤r} s_i² ≥ energy · Σ s_i²`` (0 for a zero matrix)."""
    if not isinstance(energy, (int, float)) or not 0 < energy <= 1:
        raise bad_arg("energy", energy, "a float in (0, 1]")
    c = cumulative_energy(S)
    r = (c < energy - 1e-12).sum(-1) + 1
    zero = S.double().pow(2).sum(-1) == 0
    return torch.where(zero, torch.zeros_like(r), r.clamp_max(S.shape[-1]))


def sign_by_reference(right_scores: Float[torch.Tensor, "... vocab k"]) -> Float[torch.Tensor, "... k"]:
    """The paper's sign: +1 where ``max_t s_t ≥ max_t (−s_t)`` for the scores ``s = R v`` (ties → +1)."""
    return torch.where(right_scores.amax(-2) >= -right_scores.amin(-2), 1.0, -1.0).to(right_scores.dtype)


def sign_by_largest_coordinate(V: Float[torch.Tensor, "... d k"]) -> Float[torch.Tensor, "... k"]:
    """``svd_flip``'s sign: +1 where the largest-|·| coordinate of each column is positive."""
    idx = V.abs().argmax(-2, keepdim=True)
    s = torch.gather(V, -2, idx).squeeze(-2)
    return torch.where(s >= 0, 1.0, -1.0).to(V.dtype)


def factored_svd(A: Float[torch.Tensor, "... d_left m"], B: Float[torch.Tensor, "... m d_right"]):
    """``U, S, V`` of ``A B`` through TransformerLens' ``FactoredMatrix.svd`` (float64; A B never formed).

    ``A B = U diag(S) Vᵀ``, U ``[..., d_left, m]``, V ``[..., d_right, m]``, S descending.
    """
    from transformer_lens import FactoredMatrix

    # The SVDs here are of small (d × d_head) matrices: LAPACK's per-matrix threading only costs.
    # Measured on a loaded 2-core machine: 0.23 s single-threaded vs 3-15 s with 2 threads (18 heads).
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return FactoredMatrix(A.double(), B.double()).svd()
    finally:
        torch.set_num_threads(n)


# ----------------------------------------------------------------------------- model adapters


def attn_scale(model: Any) -> float:
    """The model's true score divisor ``s`` (``softmax(q·k / s)``), read by :func:`tlgeom.models.arch.architecture`.

    From the Hugging Face attention module or config where there is one (Gemma 2/3 and VaultGemma:
    √query_pre_attn_scalar; Granite: 1/attention_multiplier; GPT-Neo: 1), else TransformerLens'
    ``cfg.attn_scale``, else √d_head.
    """
    return architecture(model).attn_scale


def _factors(model: Any, circuit: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``A [layer, head, d, d_head]``, ``B [layer, head, d_head, d]`` (float64, detached); QK scaled."""
    if circuit not in CIRCUITS:
        raise bad_arg("circuit", circuit, f"one of {CIRCUITS}")
    require(model, f"{circuit} circuit", attention=True)
    try:
        fm = model.QK if circuit == "QK" else model.OV
    except (NotImplementedError, AttributeError, RuntimeError, ValueError) as exc:
        raise TlgeomError(
            f"circuit={circuit!r}: this {architecture(model).family} bridge cannot give per-head "
            f"W_Q W_Kᵀ / W_V W_O ({type(exc).__name__}: {str(exc)[:160]})"
        ) from exc
    if not isinstance(fm.A, torch.Tensor) or not isinstance(fm.B, torch.Tensor):
        raise TlgeomError(
            f"circuit={circuit!r}: this {architecture(model).family} bridge gives its {circuit} factors as "
            f"{type(fm.A).__name__}, not stacked [layer, head, …] tensors (blocks of different attention shapes)"
        )
    n_layers = int(model.cfg.n_layers)
    if fm.A.shape[0] != n_layers:  # a hybrid model stacks only its attention blocks: index i is not layer i
        raise TlgeomError(
            f"circuit={circuit!r}: only {fm.A.shape[0]} of the {n_layers} blocks of this {architecture(model).family} "
            "have attention (a hybrid model), so per-layer W_QK / W_OV indices would name the wrong layers"
        )
    A, B = fm.A.detach().double().cpu(), fm.B.detach().double().cpu()
    if circuit == "QK":
        A = A / attn_scale(model)
    return A, B


def qk_circuit(model: Any):
    """``W_QK = W_Q W_Kᵀ / √d_head`` for every layer and head: a float64 ``FactoredMatrix [layer, head, d, d]``."""
    from transformer_lens import FactoredMatrix

    return FactoredMatrix(*_factors(model, "QK"))


def ov_circuit(model: Any):
    """``W_OV = W_V W_O`` for every layer and head: a float64 ``FactoredMatrix [layer, head, d, d]``."""
    from transformer_lens import FactoredMatrix

    return FactoredMatrix(*_factors(model, "OV"))


def _as_index_list(value: Any, n: int, arg: str, what: str) -> list[int]:
    accepted = f"None (all), an int or a list of ints in [0, {n - 1}] (the model has {what}={n})"
    if value is None:
        return list(range(n))
    if isinstance(value, range):
        value = list(value)
    items = [value] if not isinstance(value, (list, tuple)) else list(value)
    if not items:
        raise bad_arg(arg, value, accepted)
    for v in items:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < n:
            raise bad_arg(arg, value, accepted)
    return items


def _check_positive_int(value: Any, arg: str, upper: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (upper is not None and value > upper):
        raise bad_arg(arg, value, f"an int in [1, {upper}]" if upper else "a positive int")
    return value


def decode_tokens(model: Any, ids: torch.Tensor) -> list:
    """Token strings for an id tensor of any shape (nested lists; each id decoded on its own)."""
    tok = model.tokenizer
    ids = torch.as_tensor(ids)
    uniq, inv = torch.unique(ids.reshape(-1), return_inverse=True)
    strings = [_compat.token_string(tok, int(i)) for i in uniq.tolist()]
    flat = [strings[j] for j in inv.tolist()]
    out: Any = flat
    for size in reversed(ids.shape[1:]):
        out = [out[i : i + size] for i in range(0, len(out), size)]
    return out if ids.dim() > 0 else flat[0]


class _Vocab:
    """The embedding matrix E and its normalised rows n(E), for scoring vectors against LN_l(E).

    Scores are computed as ``vectors [m, d] @ Mᵀ [d, vocab]`` with M stored transposed and
    contiguous, so every product is one plain GEMM.
    """

    def __init__(self, model: Any, dtype: torch.dtype = torch.float64):
        self.E = model.W_E.detach().to("cpu", dtype)
        self.E_T = self.E.T.contiguous()
        self._normed: dict[tuple[str, float], torch.Tensor] = {}
        self.dtype = dtype

    def normed_T(self, norm: NormLayer) -> torch.Tensor:
        """``n(E)ᵀ`` [d, vocab] (normalised rows, before γ, β), cached per (kind, ε)."""
        key = (norm.kind, norm.eps)
        if key not in self._normed:
            self._normed[key] = normalize(self.E, norm.kind, norm.eps).to(self.dtype).T.contiguous()
        return self._normed[key]

    def scores_ln(self, vecs: torch.Tensor, norm: NormLayer) -> torch.Tensor:
        """``vecs @ LN(E)ᵀ`` with ``LN(E) = n(E) ⊙ γ + β``: ``[m, d] → [m, vocab]``, LN(E) never formed."""
        g = norm.gamma.to(self.dtype)
        b = norm.beta.to(self.dtype)
        vecs = vecs.to(self.dtype)
        return (vecs * g) @ self.normed_T(norm) + (vecs @ b)[:, None]

    def scores_e(self, vecs: torch.Tensor) -> torch.Tensor:
        """``vecs @ Eᵀ``: ``[m, d] → [m, vocab]``."""
        return vecs.to(self.dtype) @ self.E_T


@dataclass
class SingularDirections(Result):
    """SVD of W_QK or W_OV per layer and head, with each top direction's nearest tokens.

    Attributes:
        circuit: ``"QK"`` or ``"OV"``.
        layers, heads: the layer and head indices, in the order of the leading dims.
        U, V: ``[layer, head, d_model, d_head]`` float64 left / right singular vectors (columns),
            signs fixed (module docstring).
        S: ``[layer, head, d_head]`` singular values, descending.
        left_ids, right_ids: ``[layer, head, k, n_nearest]`` nearest token ids of the top k directions.
        left_scores, right_scores: the dot products behind them.
        left_tokens, right_tokens: the same as token strings (nested lists).
        left_reference, right_reference: what each side is compared with.
    """

    circuit: str
    layers: list[int]
    heads: list[int]
    U: torch.Tensor = field(repr=False)
    S: torch.Tensor = field(repr=False)
    V: torch.Tensor = field(repr=False)
    left_ids: torch.Tensor = field(repr=False)
    right_ids: torch.Tensor = field(repr=False)
    left_scores: torch.Tensor = field(repr=False)
    right_scores: torch.Tensor = field(repr=False)
    left_tokens: list = field(repr=False)
    right_tokens: list = field(repr=False)
    left_reference: str = "LN(E)"
    right_reference: str = "LN(E)"

    result_name = "singular_directions"

    @property
    def k(self) -> int:
        return self.left_ids.shape[2]

    def headline(self) -> dict:
        """Spectrum summaries over heads: rank at 99% of ‖W‖_F² (median, min, max), the share of the
        energy in the top direction (median), the largest singular value and where it is."""
        rank = self.rank_at(0.99).double()
        top1 = self.cumulative_energy()[..., 0]
        s_max = self.S[..., 0]
        li, hi = divmod(int(s_max.argmax()), s_max.shape[1])
        return jsonable(
            {
                "circuit": self.circuit,
                "n_layers": len(self.layers),
                "n_heads": len(self.heads),
                "d_head": int(self.S.shape[-1]),
                "k": self.k,
                "rank_99_median": float(rank.median()),
                "rank_99_min": int(rank.min()),
                "rank_99_max": int(rank.max()),
                "top1_energy_median": float(top1.median()),
                "s_max": float(s_max.max()),
                "s_max_layer": self.layers[li],
                "s_max_head": self.heads[hi],
            }
        )

    def summary(self) -> str:
        """The spectrum in one line, then the paper's table for the head with the largest singular value."""
        h = self.headline()
        line = (
            f"W_{self.circuit} singular directions: {h['n_layers']} layers × {h['n_heads']} heads, d_head "
            f"{h['d_head']}; rank holding 99% of ‖W‖_F² median {h['rank_99_median']:g} (range "
            f"{h['rank_99_min']}–{h['rank_99_max']} of {h['d_head']}); the top direction holds a median "
            f"{h['top1_energy_median']:.1%} of the energy; largest singular value {h['s_max']:.3g} "
            f"(layer {h['s_max_layer']}, head {h['s_max_head']})"
        )
        if self.k == 0:
            return line
        return line + "\n" + self.table(h["s_max_layer"], h["s_max_head"])

    def reconstruct(self) -> Float[torch.Tensor, "layer head d_model d_model"]:
        """``U diag(S) Vᵀ`` (dense d × d per head: for checks, not for large models)."""
        return (self.U * self.S[..., None, :]) @ self.V.transpose(-1, -2)

    def cumulative_energy(self) -> Float[torch.Tensor, "layer head d_head"]:
        """``Σ_{i≤r} s_i² / Σ s_i²`` per layer and head."""
        return cumulative_energy(self.S)

    def rank_at(self, energy: float = 0.99) -> Int[torch.Tensor, "layer head"]:
        """Smallest number of directions holding ``energy`` of ‖W‖_F² per layer and head."""
        return rank_at_energy(self.S, energy)

    def spectrum_frame(self):
        """Tidy frame, one row per (layer, head, direction): singular value and cumulative energy."""
        import numpy as np
        import pandas as pd

        nl, nh, r = self.S.shape
        li, hi, di = np.meshgrid(np.arange(nl), np.arange(nh), np.arange(r), indexing="ij")
        return pd.DataFrame(
            {
                "circuit": self.circuit,
                "layer": np.asarray(self.layers)[li].ravel(),
                "head": np.asarray(self.heads)[hi].ravel(),
                "direction": di.ravel(),
                "singular_value": self.S.numpy().ravel(),
                "cumulative_energy": self.cumulative_energy().numpy().ravel(),
            }
        )

    def to_frame(self):
        """Tidy frame, one row per (layer, head, direction < k, side, rank): the nearest tokens.

        Columns: ``circuit``, ``layer``, ``head``, ``direction``, ``singular_value``,
        ``cumulative_energy``, ``side`` (``"left"``/``"right"``), ``reference``, ``rank``,
        ``token_id``, ``token``, ``score`` (dot product with the reference row).
        """
        import numpy as np
        import pandas as pd

        nl, nh, k, n = self.left_ids.shape
        li, hi, di, ri = np.meshgrid(np.arange(nl), np.arange(nh), np.arange(k), np.arange(n), indexing="ij")
        frames = []
        cum = self.cumulative_energy()
        for side, ids, scores, toks, ref in (
            ("left", self.left_ids, self.left_scores, self.left_tokens, self.left_reference),
            ("right", self.right_ids, self.right_scores, self.right_tokens, self.right_reference),
        ):
            flat_toks = np.asarray(toks, dtype=object).reshape(-1) if n > 0 else np.array([], dtype=object)
            frames.append(
                pd.DataFrame(
                    {
                        "circuit": self.circuit,
                        "layer": np.asarray(self.layers)[li].ravel(),
                        "head": np.asarray(self.heads)[hi].ravel(),
                        "direction": di.ravel(),
                        "singular_value": self.S[:, :, :k].numpy()[li, hi, di].ravel(),
                        "cumulative_energy": cum[:, :, :k].numpy()[li, hi, di].ravel(),
                        "side": side,
                        "reference": ref,
                        "rank": ri.ravel(),
                        "token_id": ids.numpy().ravel(),
                        "token": flat_toks,
                        "score": scores.numpy().ravel(),
                    }
                )
            )
        return (
            pd.concat(frames, ignore_index=True)
            .sort_values(["layer", "head", "direction", "side", "rank"], kind="stable")
            .reset_index(drop=True)
        )

    def table(self, layer: int | None = None, head: int | None = None, n: int = 3) -> str:
        """The paper's table for one head: rank, singular value, top-n left and right tokens."""
        li = 0 if layer is None else self.layers.index(layer) if layer in self.layers else None
        hi = 0 if head is None else self.heads.index(head) if head in self.heads else None
        if li is None:
            raise bad_arg("layer", layer, f"one of the computed layers {self.layers}")
        if hi is None:
            raise bad_arg("head", head, f"one of the computed heads {self.heads}")
        rows = [
            f"{self.circuit} layer {self.layers[li]} head {self.heads[hi]} "
            f"(left vs {self.left_reference}, right vs {self.right_reference})"
        ]
        for d in range(self.k):
            left = ", ".join(repr(t) for t in self.left_tokens[li][hi][d][:n])
            right = ", ".join(repr(t) for t in self.right_tokens[li][hi][d][:n])
            rows.append(f"[{d}] s={float(self.S[li, hi, d]):.3g}  {left}  →  {right}")
        return "\n".join(rows)

    def plot(self, ax=None, energy: float = 0.99, *, axes=None):
        """Left: cumulative energy vs number of directions (one line per head, coloured by layer).
        Right: rank at ``energy`` per layer and head. ``ax``: None, one Axes (split in two) or two
        axes (``axes=`` is the older name). Returns the Figure."""
        import matplotlib.pyplot as plt

        fig, grid = new_panels(ax if ax is not None else axes, 1, 2, (11, 3.8))
        axes = list(grid.flat)
        cum = self.cumulative_energy().numpy()
        cmap = plt.get_cmap("viridis")
        nl = len(self.layers)
        for i in range(nl):
            for j in range(len(self.heads)):
                axes[0].plot(range(1, cum.shape[-1] + 1), cum[i, j], color=cmap(i / max(nl - 1, 1)), lw=0.6, alpha=0.7)
        axes[0].axhline(energy, color="grey", ls="--", lw=0.8)
        axes[0].set_xlabel("number of singular directions")
        axes[0].set_ylabel("cumulative energy Σs²")
        axes[0].set_title(f"W_{self.circuit} spectrum (colour: layer)")
        im = axes[1].imshow(self.rank_at(energy).numpy(), aspect="auto", cmap="magma")
        axes[1].set_yticks(range(nl))
        axes[1].set_yticklabels(self.layers, fontsize=6)
        axes[1].set_xticks(range(len(self.heads)))
        axes[1].set_xticklabels(self.heads, fontsize=6)
        axes[1].set_xlabel("head")
        axes[1].set_ylabel("layer")
        axes[1].set_title(f"rank at {energy:.0%} energy")
        fig.colorbar(im, ax=axes[1])
        return fig


@renamed(layer="layers", head="heads")
@takes_device
def singular_directions(
    model: Any,
    circuit: Any = "QK",
    layers: int | Sequence[int] | None = None,
    heads: Any = None,
    *,
    k: Any = 10,
    n_nearest: Any = 5,
) -> SingularDirections:
    """Singular directions of W_QK or W_OV and their nearest tokens.

    Args:
        model: a TransformerBridge, HookedTransformer or HookedEncoder.
        circuit: ``"QK"`` (``W_Q W_Kᵀ/√d_head``) or ``"OV"`` (``W_V W_O``).
        layers: an int, a list of ints, or None (all layers) (``layer=`` is its deprecated name).
        heads: an int, a list of ints, or None (all query heads; grouped-query models expanded)
            (``head=`` is its deprecated name).
        k: top directions mapped to tokens (≤ d_head).
        n_nearest: nearest tokens per direction and side.

    Returns:
        :class:`SingularDirections` (``.to_frame()``, ``.spectrum_frame()``, ``.table()``,
        ``.rank_at(0.99)``, ``.plot()``).

    Raises:
        TlgeomError: bad circuit, layers or heads out of range (the message names the valid range),
            k or n_nearest not positive.
    """
    info = _compat.check_model(model)
    if circuit not in CIRCUITS:
        raise bad_arg("circuit", circuit, f"one of {CIRCUITS}")
    layers = _as_index_list(layers, info.n_layers, "layers", "n_layers")
    heads = _as_index_list(heads, int(model.cfg.n_heads), "heads", "n_heads")
    d_head = int(model.cfg.d_head)
    k = _check_positive_int(k, "k", d_head)
    vocab = _Vocab(model)
    n_nearest = _check_positive_int(n_nearest, "n_nearest", vocab.E.shape[0])
    A, B = _factors(model, circuit)
    A, B = A[layers][:, heads], B[layers][:, heads]
    U, S, V = factored_svd(A, B)  # U [nl, nh, d, r], V [nl, nh, d, r]
    # fallback sign for every direction, then the paper's sign for the top k
    sign = sign_by_largest_coordinate(V)
    U, V = U * sign[..., None, :], V * sign[..., None, :]
    nl, nh = len(layers), len(heads)
    left_ids = torch.empty((nl, nh, k, n_nearest), dtype=torch.long)
    right_ids = torch.empty_like(left_ids)
    left_sc = torch.empty((nl, nh, k, n_nearest), dtype=torch.float64)
    right_sc = torch.empty_like(left_sc)
    for i, l in enumerate(layers):
        norm = attention_input_norm(model, l)
        u = U[i, :, :, :k].transpose(-1, -2).reshape(nh * k, -1)  # [nh*k, d]
        v = V[i, :, :, :k].transpose(-1, -2).reshape(nh * k, -1)
        right = vocab.scores_ln(v, norm) if circuit == "QK" else vocab.scores_e(v)  # [nh*k, vocab]
        s = sign_by_reference(right.T)  # [nh*k]
        right = right * s[:, None]
        left = vocab.scores_ln(u * s[:, None], norm)
        U[i, :, :, :k] = U[i, :, :, :k] * s.reshape(nh, 1, k)
        V[i, :, :, :k] = V[i, :, :, :k] * s.reshape(nh, 1, k)
        for out_ids, out_sc, sc in ((left_ids, left_sc, left), (right_ids, right_sc, right)):
            top = sc.topk(n_nearest, dim=-1)  # [nh*k, n]
            out_ids[i] = top.indices.reshape(nh, k, n_nearest)
            out_sc[i] = top.values.reshape(nh, k, n_nearest)
    ref_ln = "LN(E) (the normalisation feeding the layer's attention, with γ, β)"
    return SingularDirections(
        circuit=circuit,
        layers=layers,
        heads=heads,
        U=U,
        S=S,
        V=V,
        left_ids=left_ids,
        right_ids=right_ids,
        left_scores=left_sc,
        right_scores=right_sc,
        left_tokens=decode_tokens(model, left_ids),
        right_tokens=decode_tokens(model, right_ids),
        left_reference=ref_ln,
        right_reference=ref_ln if circuit == "QK" else "E (token embeddings)",
    )


# ----------------------------------------------------------------------------- key-value noun probe


def load_nouns() -> list[str]:
    """The 100 common English nouns bundled with tlgeom (``tlgeom/data/nouns.txt``)."""
    from tlgeom.data import read_text

    return [w.strip() for w in read_text("nouns.txt").splitlines() if w.strip() and not w.startswith("#")]


def single_token_words(model: Any, words: Sequence[str]) -> list[tuple[str, int, str]]:
    """``(word, token_id, token_string)`` for each word the tokenizer encodes as one known token.

    Tries ``" word"`` (a word-initial token on BPE tokenizers such as GPT-2's and SmolLM2's) and
    then ``"word"``; words that are several tokens or the unknown token are dropped.
    """
    tok = model.tokenizer
    unk = getattr(tok, "unk_token_id", None)
    out = []
    for w in words:
        if not isinstance(w, str) or not w.strip():
            raise bad_arg("nouns", w, "non-empty strings")
        for cand in (" " + w, w):
            ids = tok.encode(cand, add_special_tokens=False)
            if len(ids) == 1 and ids[0] != unk:
                out.append((w, int(ids[0]), tok.decode([ids[0]])))
                break
    return out


def _kv_groups(B: torch.Tensor, model: Any) -> list[int]:
    """For each query head, the index of the first head sharing its key weights (GQA), verified."""
    H = B.shape[0]
    n_kv = int(getattr(model.cfg, "n_key_value_heads", None) or H)
    g = H // n_kv if n_kv and H % n_kv == 0 else 1
    rep = [(h // g) * g for h in range(H)]
    if all(torch.equal(B[h], B[rep[h]]) for h in range(H)):
        return rep
    return list(range(H))


@dataclass
class KeyValueProbe(Result):
    """For each single-token noun, per layer and head: its top keys (QK) and value-update tokens (OV).

    Attributes:
        nouns: the probed nouns; ``noun_ids`` their token ids; ``noun_tokens`` the token strings.
        skipped: nouns dropped because they are not a single token.
        layers, heads: as computed.
        key_ids, key_scores: ``[layer, head, noun, k]`` the tokens t maximising
            ``LN(e_noun) W_QK LN(e_t)ᵀ`` (the noun as a query) and the scores.
        value_ids, value_scores: ``[layer, head, noun, k]`` the tokens t maximising
            ``⟨LN(e_noun) W_OV, e_t⟩`` (what the head writes when it reads the noun) and the scores.
    """

    nouns: list[str]
    noun_ids: list[int]
    noun_tokens: list[str]
    skipped: list[str]
    layers: list[int]
    heads: list[int]
    key_ids: torch.Tensor = field(repr=False)
    key_scores: torch.Tensor = field(repr=False)
    value_ids: torch.Tensor = field(repr=False)
    value_scores: torch.Tensor = field(repr=False)
    key_tokens: list = field(repr=False)
    value_tokens: list = field(repr=False)

    result_name = "noun_probe"

    def headline(self) -> dict:
        """Self rates (fraction of nouns among their own top keys / value tokens): mean over heads and
        the head where each is highest."""
        out: dict[str, Any] = {
            "n_nouns": len(self.nouns),
            "n_skipped": len(self.skipped),
            "n_layers": len(self.layers),
            "n_heads": len(self.heads),
            "k": int(self.key_ids.shape[-1]),
        }
        for name, rate in self.self_rates().items():
            li, hi = divmod(int(rate.argmax()), rate.shape[1])
            out[f"{name}_mean"] = float(rate.mean())
            out[f"{name}_max"] = float(rate.max())
            out[f"{name}_max_layer"] = self.layers[li]
            out[f"{name}_max_head"] = self.heads[hi]
        return jsonable(out)

    def summary(self) -> str:
        h = self.headline()
        k = h["k"]
        skipped = f" ({h['n_skipped']} skipped: not single tokens)" if h["n_skipped"] else ""
        return (
            f"noun probe: {h['n_nouns']} nouns{skipped} × {h['n_layers']} layers × {h['n_heads']} heads, top {k}; "
            f"a noun is among its own top keys (QK) in {h['self_key_mean']:.1%} of (noun, head) pairs on average "
            f"(best head L{h['self_key_max_layer']}H{h['self_key_max_head']}: {h['self_key_max']:.1%}) and among "
            f"its value-update tokens (OV) in {h['self_value_mean']:.1%} (best L{h['self_value_max_layer']}"
            f"H{h['self_value_max_head']}: {h['self_value_max']:.1%})"
        )

    def self_rates(self) -> dict[str, torch.Tensor]:
        """``[layer, head]`` fraction of nouns that are among their own top keys / value tokens."""
        ids = torch.tensor(self.noun_ids)[None, None, :, None]
        return {
            "self_key": (self.key_ids == ids).any(-1).double().mean(-1),
            "self_value": (self.value_ids == ids).any(-1).double().mean(-1),
        }

    def to_frame(self):
        """Tidy frame, one row per (noun, layer, head, circuit, rank).

        Columns: ``noun``, ``noun_id``, ``layer``, ``head``, ``circuit`` (``"QK"``: top keys the
        noun attends to; ``"OV"``: nearest tokens to its value update), ``rank``, ``token_id``,
        ``token``, ``score``, ``is_self`` (the token is the noun itself).
        """
        import numpy as np
        import pandas as pd

        nl, nh, nn, k = self.key_ids.shape
        li, hi, ni, ri = np.meshgrid(np.arange(nl), np.arange(nh), np.arange(nn), np.arange(k), indexing="ij")
        nid = np.asarray(self.noun_ids)[ni].ravel()
        frames = []
        for circ, ids, sc, toks in (
            ("QK", self.key_ids, self.key_scores, self.key_tokens),
            ("OV", self.value_ids, self.value_scores, self.value_tokens),
        ):
            frames.append(
                pd.DataFrame(
                    {
                        "noun": np.asarray(self.nouns, dtype=object)[ni].ravel(),
                        "noun_id": nid,
                        "layer": np.asarray(self.layers)[li].ravel(),
                        "head": np.asarray(self.heads)[hi].ravel(),
                        "circuit": circ,
                        "rank": ri.ravel(),
                        "token_id": ids.numpy().ravel(),
                        "token": np.asarray(toks, dtype=object).reshape(-1),
                        "score": sc.double().numpy().ravel(),
                        "is_self": ids.numpy().ravel() == nid,
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def plot(self, ax=None, *, axes=None):
        """Heat maps over layer × head: how often a noun's top keys / value tokens include itself.

        ``ax``: None, one Axes (split in two) or two axes (``axes=``, the older name). Returns the Figure."""
        rates = self.self_rates()
        fig, grid = new_panels(ax if ax is not None else axes, 1, 2, (11, 3.8))
        for ax, (name, title) in zip(
            grid.flat,
            (
                ("self_key", "noun among its own top keys (QK)"),
                ("self_value", "noun among its value-update tokens (OV)"),
            ),
        ):
            im = ax.imshow(rates[name].numpy(), aspect="auto", vmin=0, vmax=1, cmap="viridis")
            ax.set_title(title, fontsize=9)
            ax.set_xlabel("head")
            ax.set_ylabel("layer")
            ax.set_yticks(range(len(self.layers)))
            ax.set_yticklabels(self.layers, fontsize=5)
            fig.colorbar(im, ax=ax)
        return fig


@takes_device
def noun_probe(
    model: Any,
    nouns: Sequence[str] | None = None,
    *,
    layers: int | Sequence[int] | None = None,
    heads: Any = None,
    k: int = 5,
    dtype: torch.dtype = torch.float32,
) -> KeyValueProbe:
    """The key-value probe on common nouns: what each noun looks for and what it writes.

    For block l, head h and a single-token noun with normalised embedding ``q = LN_l(e_noun)``
    (the normalisation feeding block l's attention, with γ, β):

    * **keys**: the k tokens t with the largest ``q W_QK LN_l(e_t)ᵀ`` (W_QK = W_Q W_Kᵀ/√d_head),
      computed as ``(q W_Q)(LN_l(E) W_K)ᵀ/√d_head`` with ``LN_l(E) W_K`` once per key/value head
      (grouped-query heads share it);
    * **values**: the k tokens t with the largest ``⟨q W_V W_O, e_t⟩``, computed as
      ``(q W_V)(W_O Eᵀ)`` when there are more nouns than d_head.

    Biases and rotary positions are left out (see the module docstring).

    Args:
        model: a TransformerBridge, HookedTransformer or HookedEncoder.
        nouns: words to probe; default :func:`load_nouns` (100 common English nouns).
        layers, heads: ints, lists or None (all).
        k: tokens kept per (noun, layer, head).
        dtype: dtype of the vocabulary-wide products. float32 (default) halves the time on CPU;
            the scores are rankings, and float32 and float64 agree except at near-ties
            (|Δscore| ≲ 1e-6 relative). Pass ``torch.float64`` for exact ties.

    Returns:
        :class:`KeyValueProbe` (``.to_frame()``, ``.self_rates()``, ``.plot()``).

    Raises:
        TlgeomError: layer/head out of range, no noun is a single token, bad k or dtype.
    """
    info = _compat.check_model(model)
    lay = _as_index_list(layers, info.n_layers, "layers", "n_layers")
    hds = _as_index_list(heads, int(model.cfg.n_heads), "heads", "n_heads")
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise bad_arg("dtype", dtype, "a floating torch.dtype")
    if nouns is None:
        nouns = load_nouns()
    if isinstance(nouns, str) or not isinstance(nouns, (list, tuple)) or not nouns:
        raise bad_arg("nouns", nouns, "a non-empty list of words")
    found = single_token_words(model, nouns)
    if not found:
        raise bad_arg("nouns", list(nouns)[:5], "at least one word that is a single token of this tokenizer")
    words = [w for w, _, _ in found]
    skipped = [w for w in nouns if w not in set(words)]
    ids = torch.tensor([i for _, i, _ in found])
    vocab = _Vocab(model, dtype)
    V = vocab.E.shape[0]
    k = _check_positive_int(k, "k", V)
    Aq, Bk = _factors(model, "QK")  # [L, H, d, dh] (W_Q/scale), [L, H, dh, d] (W_Kᵀ)
    Av, Bo = _factors(model, "OV")  # W_V, W_O
    nl, nh, nn = len(lay), len(hds), len(found)
    d_head = int(model.cfg.d_head)
    key_ids = torch.empty((nl, nh, nn, k), dtype=torch.long)
    val_ids = torch.empty_like(key_ids)
    key_sc = torch.empty((nl, nh, nn, k), dtype=dtype)
    val_sc = torch.empty_like(key_sc)
    with torch.no_grad():
        for i, l in enumerate(lay):
            norm = attention_input_norm(model, l)
            g, b = norm.gamma.to(dtype), norm.beta.to(dtype)
            nE_T = vocab.normed_T(norm)  # [d, vocab]
            q_in = nE_T[:, ids].T * g + b  # [noun, d] = LN_l(e_noun)
            groups = _kv_groups(Bk[l], model)
            reps = sorted({groups[h] for h in hds})
            # LN_l(E) W_K = n(E) (γ ⊙ W_K) + β W_K for every key/value head used: one GEMM
            WK = torch.cat([Bk[l, r].T for r in reps], dim=1).to(dtype)  # [d, n_rep*dh]
            keys = ((g[:, None] * WK).T @ nE_T + (b @ WK)[:, None]).reshape(len(reps), -1, V)  # [rep, dh, vocab]
            col = {r: j for j, r in enumerate(reps)}
            Q = torch.einsum("nd,hde->hne", q_in, Aq[l, hds].to(dtype))  # [head, noun, dh]
            kq = keys[[col[groups[h]] for h in hds]]  # [head, dh, vocab] (a view per group)
            top = torch.bmm(Q, kq).topk(k, dim=-1)
            key_ids[i], key_sc[i] = top.indices, top.values
            # ⟨q W_V W_O, e_t⟩ = (q W_V) · (W_O Eᵀ)_t: W_O Eᵀ [head·dh, vocab] in one GEMM costs
            # H·dh·d·V instead of H·n·d·V for the updates themselves (fewer when n_nouns > d_head)
            qv = torch.einsum("nd,hde->hne", q_in, Av[l, hds].to(dtype))  # [head, noun, dh]
            if nn > d_head:
                WoE = (Bo[l, hds].to(dtype).reshape(nh * d_head, -1) @ vocab.E_T).reshape(nh, d_head, V)
                top = torch.bmm(qv, WoE).topk(k, dim=-1)
            else:
                upd = torch.einsum("hne,hef->hnf", qv, Bo[l, hds].to(dtype))
                top = (upd.reshape(nh * nn, -1) @ vocab.E_T).reshape(nh, nn, V).topk(k, dim=-1)
            val_ids[i], val_sc[i] = top.indices, top.values
    return KeyValueProbe(
        nouns=words,
        noun_ids=ids.tolist(),
        noun_tokens=[t for _, _, t in found],
        skipped=skipped,
        layers=lay,
        heads=hds,
        key_ids=key_ids,
        key_scores=key_sc,
        value_ids=val_ids,
        value_scores=val_sc,
        key_tokens=decode_tokens(model, key_ids),
        value_tokens=decode_tokens(model, val_ids),
    )
