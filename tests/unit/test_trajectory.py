"""Trajectory capture and streaming on tiny offline models (both TransformerLens APIs)."""

from __future__ import annotations

import pytest
import torch

import tlgeom
from tlgeom.models import _compat, tiny_model


def _cache(model, tokens, names):
    kw = {} if type(model).__name__ == "HookedEncoder" else {"return_type": None}
    _, cache = model.run_with_cache(tokens, names_filter=sorted(names), **kw)
    return cache


def test_shapes_and_points(tiny_any):
    m = tiny_any
    t = tlgeom.record_trajectories(m, "the cat sat on the mat .")
    L = m.cfg.n_layers
    assert t.states.shape == (1, t.tokens.shape[1], L + 1, m.cfg.d_model)
    assert t.tokens.dtype == torch.long and t.mask.dtype == torch.bool and bool(t.mask.all())
    assert len(t.str_tokens[0]) == t.tokens.shape[1]
    assert t.point_labels == ["embed"] + [f"L{l}" for l in range(L)]
    assert len(t.hook_names) == L + 1


def test_equals_run_with_cache(tiny_any):
    """Each point is exactly the activation TransformerLens caches under that hook name."""
    m = tiny_any
    t = tlgeom.record_trajectories(m, "a big red dog ran up the road")
    cache = _cache(m, t.tokens, set(t.hook_names))
    for i, name in enumerate(t.hook_names):
        torch.testing.assert_close(t.states[:, :, i], cache[name], rtol=0, atol=0)


def test_block_output_is_next_block_input(tiny_any):
    """Point l+1 (block l's output) is what block l+1 reads, in every API (the BERT naming trap)."""
    m = tiny_any
    t = tlgeom.record_trajectories(m, "the dog saw the cat")
    names = [f"blocks.{l}.hook_resid_pre" for l in range(1, m.cfg.n_layers)]
    cache = _cache(m, t.tokens, set(names))
    for l in range(1, m.cfg.n_layers):
        torch.testing.assert_close(t.states[:, :, l], cache[f"blocks.{l}.hook_resid_pre"], rtol=0, atol=0)


def test_sublayer_points(tiny_gpt2, tiny_bert):
    for m in (tiny_gpt2, tiny_bert):
        t = tlgeom.record_trajectories(m, "the sun and the moon", points="sublayer")
        assert t.states.shape[2] == 2 * m.cfg.n_layers + 1
        assert t.point_labels[1] == "L0.mid"
        r = tlgeom.record_trajectories(m, "the sun and the moon")
        torch.testing.assert_close(t.states[:, :, ::2], r.states, rtol=0, atol=0)
    # decoder: the mid point is resid_pre + attn_out
    cache = _cache(tiny_gpt2, t.tokens, {"blocks.0.hook_resid_pre", "blocks.0.hook_attn_out"})
    t = tlgeom.record_trajectories(tiny_gpt2, "the sun and the moon", points="sublayer")
    torch.testing.assert_close(t.states[:, :, 1], cache["blocks.0.hook_resid_pre"] + cache["blocks.0.hook_attn_out"])


def test_bridge_bert_resid_mid_trap(tiny_bert):
    """Bridge BERT's hook_resid_mid is the pre-LN2 sum, not the stream between sublayers:
    tlgeom's mid point is LN1's output, which is what the MLP reads."""
    t = tlgeom.record_trajectories(tiny_bert, "the sea and the sky", points="sublayer")
    seen = {}
    names = ["blocks.0.hook_mlp_in", "blocks.0.hook_resid_mid", "blocks.0.ln1.hook_out"]
    with (
        torch.no_grad(),
        tiny_bert.hooks(fwd_hooks=[(n, lambda a, hook, n=n: seen.__setitem__(n, a.clone())) for n in names]),
    ):
        tiny_bert(t.tokens)
    cache = seen
    torch.testing.assert_close(t.states[:, :, 1], cache["blocks.0.hook_mlp_in"], rtol=0, atol=0)
    assert not torch.allclose(cache["blocks.0.hook_resid_mid"], cache["blocks.0.ln1.hook_out"])


def test_bridge_alias_names_not_double_counted(tiny_llama):
    """A Bridge caches alias names (blocks.L.hook_in/hook_out) beside the canonical ones."""
    _, cache = tiny_llama.run_with_cache("the cat", names_filter=["blocks.0.hook_resid_pre"])
    assert "blocks.0.hook_in" in cache.keys()  # the trap: the alias comes along
    t = tlgeom.record_trajectories(tiny_llama, "the cat")
    assert t.states.shape[2] == tiny_llama.cfg.n_layers + 1
    assert all(".hook_in" not in n and ".hook_out" not in n for n in t.hook_names)


def test_padded_batch_equals_single_runs(tiny_any):
    m = tiny_any
    texts = ["the old man saw the big red car on the road", "a dog"]
    batch = tlgeom.record_trajectories(m, texts)
    assert batch.mask.tolist()[1][:4] == [True] * (len(batch.str_tokens[1])) + [False] * (4 - len(batch.str_tokens[1]))
    for i, text in enumerate(texts):
        one = tlgeom.record_trajectories(m, text)
        n = one.tokens.shape[1]
        assert int(batch.mask[i].sum()) == n
        torch.testing.assert_close(batch.states[i, :n], one.states[0], rtol=1e-5, atol=1e-5)
        assert batch.str_tokens[i] == one.str_tokens[0]


def test_token_tensor_inputs(tiny_gpt2):
    t1 = tlgeom.record_trajectories(tiny_gpt2, "the cat sat")
    t2 = tlgeom.record_trajectories(tiny_gpt2, t1.tokens[0])
    t3 = tlgeom.record_trajectories(tiny_gpt2, t1.tokens.repeat(3, 1))
    torch.testing.assert_close(t2.states, t1.states)
    assert t3.states.shape[0] == 3
    torch.testing.assert_close(t3.states[2], t1.states[0])


def test_dtype_option(tiny_gpt2):
    t = tlgeom.record_trajectories(tiny_gpt2, "the cat sat", dtype=torch.float64)
    assert t.states.dtype == torch.float64


def test_to_frame_and_plot(tiny_gpt2):
    import matplotlib

    matplotlib.use("Agg")
    t = tlgeom.record_trajectories(tiny_gpt2, "the cat sat on")
    df = t.to_frame()
    assert len(df) == t.tokens.shape[1] * t.n_points
    assert {"token", "point", "norm", "step_norm", "turning_angle_deg"} <= set(df.columns)
    ax = t.plot().axes[0]  # plot() returns the Figure
    assert len(ax.lines) == t.tokens.shape[1]


# --------------------------------------------------------------------------------- streaming


def test_stream_equals_tensor_path(tiny_any):
    m = tiny_any
    texts = ["the old man saw the big red car", "a dog ran"]
    out = tlgeom.stream(m, texts)
    t = tlgeom.record_trajectories(m, texts)
    for key, fn in [
        ("turning_angles", tlgeom.turning_angles),
        ("step_norms", tlgeom.geometry.curvature.step_norms),
        ("length_to_chord", tlgeom.length_to_chord),
    ]:
        torch.testing.assert_close(out[key], fn(t), equal_nan=True, rtol=1e-10, atol=1e-10)
    assert torch.isnan(out["turning_angles"][1, 5:]).all()  # padding is NaN, never 0


def test_stream_metric_composes_with_model_hooks(tiny_llama):
    angles = tlgeom.TurningAngles()
    toks = tiny_llama.to_tokens("the cat sat on the mat")
    with torch.no_grad(), tiny_llama.hooks(fwd_hooks=angles.hooks(tiny_llama)):
        tiny_llama(toks)
    torch.testing.assert_close(angles.result(), tlgeom.turning_angles(tlgeom.record_trajectories(tiny_llama, toks)))


class _Boom(tlgeom.StreamMetric):
    name = "boom"

    def update(self, index, x):
        if index == 1:
            raise RuntimeError("boom mid-forward")

    def result(self):
        return None


def _warm(model):
    """A Bridge attaches a few permanent hooks of its own on its first forward: count after it."""
    tlgeom.record_trajectories(model, "the cat")
    return _compat.count_hooks(model)


def test_hooks_removed_after_exception(tiny_any):
    m = tiny_any
    before = _warm(m)
    with pytest.raises(RuntimeError, match="boom"):
        tlgeom.stream(m, "the cat sat", metrics=[_Boom()])
    assert _compat.count_hooks(m) == before
    t = tlgeom.record_trajectories(m, "the cat sat")  # the model still works
    assert torch.isfinite(t.states).all()


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "inputs, match",
    [
        ("", "inputs=''"),
        ("   ", "non-empty"),
        ([], "inputs=\\[\\]"),
        (["the cat", 3], "list of strings"),
        (torch.zeros(2, 3), "integer token ids"),
        (torch.tensor([[1, 10_000]]), "d_vocab"),
        (12, "inputs=12"),
    ],
)
def test_bad_inputs(tiny_gpt2, inputs, match):
    before = _warm(tiny_gpt2)
    with pytest.raises(tlgeom.TlgeomError, match=match):
        tlgeom.record_trajectories(tiny_gpt2, inputs)
    assert _compat.count_hooks(tiny_gpt2) == before


def test_too_long(tiny_gpt2):
    before = _warm(tiny_gpt2)
    with pytest.raises(tlgeom.TlgeomError, match="n_ctx=64"):
        tlgeom.record_trajectories(tiny_gpt2, " ".join(["the"] * 80))
    with pytest.raises(tlgeom.TlgeomError, match="n_ctx=64"):
        tlgeom.record_trajectories(tiny_gpt2, torch.ones(1, 65, dtype=torch.long))
    assert _compat.count_hooks(tiny_gpt2) == before


def test_not_a_model():
    with pytest.raises(tlgeom.TlgeomError, match="model=.*TransformerLens model"):
        tlgeom.record_trajectories(torch.nn.Linear(2, 2), "the cat")
    with pytest.raises(tlgeom.TlgeomError, match="got str"):
        tlgeom.record_trajectories("gpt2", "the cat")


def test_bad_points_and_missing_hook(tiny_gpt2, unchecked):
    before = _warm(tiny_gpt2)
    with pytest.raises(tlgeom.TlgeomError, match="points='layers'.*'resid', 'sublayer'"):
        tlgeom.record_trajectories(tiny_gpt2, "the cat", points="layers")
    with pytest.raises(tlgeom.TlgeomError, match="hook point='blocks.7.hook_resid_post'"):
        _compat.check_hook_names(tiny_gpt2, ["blocks.7.hook_resid_post"])
    with unchecked(), pytest.raises(tlgeom.TlgeomError, match="metrics="):
        tlgeom.stream(tiny_gpt2, "the cat", metrics=["angles"])
    assert _compat.count_hooks(tiny_gpt2) == before


def test_unknown_model_name():
    with pytest.raises(tlgeom.TlgeomError, match="name='no-such-model-xyz'"):
        tlgeom.load_model("no-such-model-xyz")
    with pytest.raises(tlgeom.TlgeomError, match="api="):
        tlgeom.load_model("minilm-l6", api="hooked")
    with pytest.raises(tlgeom.TlgeomError, match="name="):
        tlgeom.load_model("")


def test_tiny_model_bad_args():
    with pytest.raises(tlgeom.TlgeomError, match="kind='t5'"):
        tiny_model("t5")


def test_bridge_bert_attn_scores_trap(tiny_bert):
    """On a Bridge BERT, hook_attn_scores holds the post-softmax pattern: scores must be
    recomputed from hook_q / hook_k (q·k/√d_head), whose softmax is the pattern."""
    seen = {}
    names = [
        "blocks.0.attn.hook_q",
        "blocks.0.attn.hook_k",
        "blocks.0.attn.hook_pattern",
        "blocks.0.attn.hook_attn_scores",
    ]
    toks = tiny_bert.to_tokens("the cat sat on the mat")
    with (
        torch.no_grad(),
        tiny_bert.hooks(fwd_hooks=[(n, lambda a, hook, n=n: seen.__setitem__(n, a.clone())) for n in names]),
    ):
        tiny_bert(toks)
    q, k = seen["blocks.0.attn.hook_q"], seen["blocks.0.attn.hook_k"]  # [batch, pos, head, d_head]
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    torch.testing.assert_close(scores.softmax(-1), seen["blocks.0.attn.hook_pattern"], rtol=1e-5, atol=1e-6)
    assert torch.allclose(seen["blocks.0.attn.hook_attn_scores"], seen["blocks.0.attn.hook_pattern"])
