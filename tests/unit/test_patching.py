"""Batched patching attribution equals TransformerLens' one-pass-per-patch loop (tiny models, both APIs).

Tolerance: 1e-5 absolute on the restored fraction. Batched and unbatched float32 forwards differ
by ~1e-7 relative, and the fraction divides by ‖e − c‖, so in float32 the error scales as
~1e-7·‖c‖/‖e − c‖. The random tiny BERT barely mixes tokens (‖e − c‖/‖c‖ ≈ 0.5 %), which puts
float32 at the edge of 1e-5; the comparisons therefore run on float64 copies of every tiny model
(measured error ~1e-8, TransformerLens stores its results in float32), plus float32 on the
decoders, whose deflection is large (asserted > 10 %).
"""

from __future__ import annotations

import pytest
import torch

import tlgeom
from tlgeom._errors import TlgeomError
from tlgeom.experiments.patching import CAUSAL, NOOP, UNPAIRED, default_batch_size, patch_attribution, restored_fraction
from tlgeom.models import _compat, tiny_model

TOL = 1e-5
CLEAN, EDITED, TARGET = "cat sat on the mat .", "dog sat on the mat .", "sat"


def _tl_major() -> int:
    from importlib.metadata import version

    return int(version("transformer-lens").split(".")[0])


KINDS64 = [("gpt2", "bridge"), ("llama", "bridge"), ("bert", "bridge")] + (
    [("gpt2", "hooked"), ("llama", "hooked"), ("bert", "hooked")] if _tl_major() < 4 else []
)
_CACHE64: dict = {}


def _tiny64(kind: str, api: str = "bridge"):
    """A float64 copy of the tiny model (built once per module; 10-60 ms)."""
    if (kind, api) not in _CACHE64:
        _CACHE64[(kind, api)] = tiny_model(kind, api=api, seed=0).to(torch.float64)
    return _CACHE64[(kind, api)]


def _hooks_after_warmup(model) -> int:
    """Hook count after one forward: a Bridge wires some permanent capture hooks on its first pass."""
    info = _compat.check_model(model)
    toks, mask = _compat.tokenize(model, "the cat", info)
    _compat.run_with_point_hooks(model, toks, mask, info, [])
    return _compat.count_hooks(model)


def _tl_sweep(model, res, clean, edited, fn):
    """TransformerLens' own sweep with the same metric: the target's final state is read by a hook
    attached around the call (TransformerLens removes only the hooks it adds itself)."""
    info = _compat.check_model(model)
    final = _compat.point_hook_names(model, "resid", info)[-1]
    ct, _ = _compat.tokenize(model, clean, info)
    et, _ = _compat.tokenize(model, edited, info)
    _, cache = model.run_with_cache(ct)
    grab = {}

    def cap(act, hook):
        grab["x"] = act[0, res.target_pos].detach()
        return act

    def metric(logits):
        return restored_fraction(grab["x"], res.clean_final, res.edited_final)

    with model.hooks(fwd_hooks=[(final, cap)]):
        return fn(model, et, cache, metric).double()


@pytest.mark.parametrize("kind,api", KINDS64, ids=lambda x: x)
def test_equals_get_act_patch_resid_pre(kind, api):
    from transformer_lens.patching import get_act_patch_resid_pre

    m = _tiny64(kind, api)
    n0 = _hooks_after_warmup(m)
    before = tlgeom.record_trajectories(m, CLEAN).states
    res = patch_attribution(m, CLEAN, EDITED, TARGET, progress=False)
    assert _compat.count_hooks(m) == n0
    # the passes stop at the last point by raising inside a hook: the model is left as it was
    torch.testing.assert_close(tlgeom.record_trajectories(m, CLEAN).states, before, rtol=0, atol=0)
    ref = _tl_sweep(m, res, CLEAN, EDITED, get_act_patch_resid_pre)
    assert ref.shape == res.values.shape == (m.cfg.n_layers, len(res.str_tokens))
    torch.testing.assert_close(res.values, ref, rtol=0, atol=TOL)
    assert res.n_run < res.values.numel() or _compat.check_model(m).encoder  # decoders prune


def test_equals_get_act_patch_resid_pre_float32(tiny_llama):
    from transformer_lens.patching import get_act_patch_resid_pre

    m = tiny_llama
    res = patch_attribution(m, CLEAN, EDITED, TARGET, progress=False)
    assert res.final_distance > 0.1 * float(res.clean_final.norm())
    torch.testing.assert_close(res.values, _tl_sweep(m, res, CLEAN, EDITED, get_act_patch_resid_pre), rtol=0, atol=TOL)


FN = {
    "attn_out": "get_act_patch_attn_out",
    "mlp_out": "get_act_patch_mlp_out",
    "head": "get_act_patch_attn_head_out_by_pos",
}


@pytest.mark.parametrize(
    "component,kind",
    [("attn_out", "gpt2"), ("attn_out", "bert"), ("mlp_out", "llama"), ("head", "llama"), ("head", "bert")],
)
def test_components_equal_transformer_lens(component, kind):
    import transformer_lens.patching as tlp

    m = _tiny64(kind)
    res = patch_attribution(m, CLEAN, EDITED, TARGET, component=component, progress=False)
    ref = _tl_sweep(m, res, CLEAN, EDITED, getattr(tlp, FN[component]))
    assert ref.shape == res.values.shape
    torch.testing.assert_close(res.values, ref, rtol=0, atol=TOL)
    assert (res.values.abs() > 1e-3).any()  # the patches do something


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert"])
def test_pruning_batching_and_closed_forms(kind):
    m = _tiny64(kind)
    full = patch_attribution(m, CLEAN, EDITED, TARGET, prune=False, progress=False)
    pruned = patch_attribution(m, CLEAN, EDITED, TARGET, progress=False)
    one = patch_attribution(m, CLEAN, EDITED, TARGET, batch_size=1, progress=False)
    torch.testing.assert_close(pruned.values, full.values, rtol=0, atol=TOL)
    torch.testing.assert_close(one.values, full.values, rtol=0, atol=TOL)
    assert one.n_batches == one.n_run and full.n_run == full.values.numel()
    skipped = (pruned.status == CAUSAL) | (pruned.status == NOOP)
    assert bool((pruned.values[skipped] == 0).all())
    edit_pos = pruned.str_tokens.index("dog")
    # patching the whole clean input at layer 0 turns the edited run into the clean run: fraction 1
    assert float(full.values[0, edit_pos]) == pytest.approx(1.0, abs=TOL)
    # positions before the edit carry nothing (identical prefix; decoders also after the target)
    assert float(full.values[:, :edit_pos].abs().max()) < TOL
    if not _compat.check_model(m).encoder:
        assert bool((pruned.status[:, pruned.target_pos + 1 :] == CAUSAL).all())
        proj = patch_attribution(m, CLEAN, EDITED, TARGET, metric="projection", progress=False)
        assert float(proj.values[0, edit_pos]) == pytest.approx(1.0, abs=TOL)


def test_insertion_pairs_aligned_positions_only(tiny_llama):
    res = patch_attribution(
        tiny_llama, "the cat sat on the mat .", "the big red cat sat on the mat .", "mat", progress=False
    )
    toks = res.str_tokens
    ins = [toks.index("big"), toks.index("red")]
    assert bool(torch.isnan(res.values[:, ins]).all()) and bool((res.status[:, ins] == UNPAIRED).all())
    assert res.clean_positions[ins].tolist() == [-1, -1]
    paired = [p for p in range(len(toks)) if p not in ins]
    assert [res.clean_str_tokens[int(res.clean_positions[p])] for p in paired] == [toks[p] for p in paired]
    assert not torch.isnan(res.values[:, paired]).any()
    f = res.to_frame()
    assert len(f) == res.values.numel() and set(f.status) <= {"run", "causal_zero", "noop_zero", "unpaired"}


def test_restored_fraction_closed_form():
    g = torch.Generator().manual_seed(0)
    c, e = torch.randn(8, generator=g, dtype=torch.float64), torch.randn(8, generator=g, dtype=torch.float64)
    for metric in ("restored", "projection"):
        assert float(restored_fraction(e, c, e, metric)) == 0.0
        assert float(restored_fraction(c, c, e, metric)) == pytest.approx(1.0, abs=1e-15)
    mid = torch.stack([e + t * (c - e) for t in (0.25, 0.5)])  # on the segment: both metrics = t
    torch.testing.assert_close(restored_fraction(mid, c, e), torch.tensor([0.25, 0.5], dtype=torch.float64))
    torch.testing.assert_close(
        restored_fraction(mid, c, e, "projection"), torch.tensor([0.25, 0.5], dtype=torch.float64)
    )
    with pytest.raises(TlgeomError, match="metric"):
        restored_fraction(c, c, e, "logit")


def test_default_batch_size():
    assert default_batch_size(8) == 256 and default_batch_size(60) == 2048 // 60
    assert default_batch_size(10_000) == 1
    assert [default_batch_size(n) for n in (10, 20, 40, 80)] == sorted(
        [default_batch_size(n) for n in (10, 20, 40, 80)], reverse=True
    )


def test_bad_input_and_no_deflection(tiny_gpt2):
    m = tiny_gpt2
    with pytest.raises(TlgeomError, match="does not move the target"):
        patch_attribution(m, CLEAN, "cat sat on the big mat .", "sat", progress=False)  # edit after target
    for kwargs, arg in [
        (dict(component="q"), "component"),
        (dict(metric="kl"), "metric"),
        (dict(layers=[5]), "layers"),
        (dict(batch_size=0), "batch_size"),
        (dict(token_budget=0), "token_budget"),
    ]:
        with pytest.raises(TlgeomError, match=arg):
            patch_attribution(m, CLEAN, EDITED, TARGET, progress=False, **kwargs)
    sub = patch_attribution(m, CLEAN, EDITED, TARGET, layers=[1], progress=False)
    full = patch_attribution(m, CLEAN, EDITED, TARGET, progress=False)
    torch.testing.assert_close(sub.values[0], full.values[1], rtol=0, atol=TOL)


def test_hooks_removed_after_exception(tiny_gpt2, monkeypatch):
    import tlgeom.experiments.patching as P

    m = tiny_gpt2
    real = P._capture
    calls = []

    def broken(model, tokens, info, names, final):
        acts = real(model, tokens, info, names, final)
        calls.append(1)
        if len(calls) == 1:  # clean activations of the wrong width: the patch hook fails mid-forward
            acts = {k: (v[..., :3] if "resid_pre" in k else v) for k, v in acts.items()}
        return acts

    monkeypatch.setattr(P, "_capture", broken)
    n0 = _hooks_after_warmup(m)
    with pytest.raises(RuntimeError):
        patch_attribution(m, CLEAN, EDITED, TARGET, progress=False)
    assert _compat.count_hooks(m) == n0


def test_plot(tiny_gpt2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = patch_attribution(tiny_gpt2, CLEAN, EDITED, TARGET, progress=False)
    ax = res.plot().axes[0]  # plot() returns the Figure
    assert [t.get_text() for t in ax.get_xticklabels()] == [repr(t)[1:-1] for t in res.str_tokens]
    heads = patch_attribution(tiny_gpt2, CLEAN, EDITED, TARGET, component="head", progress=False)
    assert heads.values.shape == (2, len(res.str_tokens), tiny_gpt2.cfg.n_heads)
    ax = heads.plot().axes[0]
    assert ax.get_xticklabels()[0].get_text() == "H0"
    with pytest.raises(TlgeomError, match="pos"):
        heads.plot(pos=99)
    plt.close("all")
