"""The Hugging Face path that ``load_model("gpt2")`` takes on Colab, exercised offline.

A tiny random ``GPT2LMHeadModel`` (+ the tiny tokenizer) is saved to a folder and loaded by
``tlgeom.load_model(folder)``, i.e. ``TransformerBridge.boot_transformers`` on a GPT-2 checkpoint,
exactly as for the hub name. Checked against the Hugging Face module's own hidden states, and
through the command line (``--model FOLDER``).
"""

from __future__ import annotations

import json

import pytest
import torch

import tlgeom
from tlgeom import cli
from tlgeom.models import tiny_tokenizer

N_LAYERS, D_MODEL, N_HEADS = 3, 48, 4


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    tok = tiny_tokenizer()
    torch.manual_seed(0)
    cfg = GPT2Config(
        vocab_size=len(tok),
        n_positions=64,
        n_embd=D_MODEL,
        n_layer=N_LAYERS,
        n_head=N_HEADS,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    hf = GPT2LMHeadModel(cfg).eval()
    path = tmp_path_factory.mktemp("tiny-gpt2")
    hf.save_pretrained(path)
    tok.save_pretrained(path)
    return path, hf, tok


@pytest.fixture(scope="module")
def gpt2_bridge(gpt2_dir):
    m = tlgeom.load_model(str(gpt2_dir[0]))
    assert (m.cfg.n_layers, m.cfg.d_model, m.cfg.n_heads) == (N_LAYERS, D_MODEL, N_HEADS)
    return m


def test_trajectories_equal_hf_hidden_states(gpt2_dir, gpt2_bridge):
    _, hf, tok = gpt2_dir
    text = "the cat sat on the river bank ."
    traj = tlgeom.record_trajectories(gpt2_bridge, text)
    ids = traj.tokens[:1]
    with torch.no_grad():
        hs = hf(ids, output_hidden_states=True).hidden_states  # embed, block outputs (last one after ln_f)
    ref = torch.stack(hs[:-1], dim=1)[0].double()  # points 0 .. L-1 before the final LayerNorm
    got = traj.states[0, :, :N_LAYERS].permute(1, 0, 2).double()
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    # the last point is the last block's raw output: HF's last hidden state is ln_f of it
    last = traj.states[0, :, N_LAYERS].float()
    torch.testing.assert_close(hf.transformer.ln_f(last).double(), hs[-1][0].double(), rtol=1e-5, atol=1e-5)


def test_sphere_report_is_layernorm_on_the_hyperplane(gpt2_bridge):
    r = tlgeom.sphere_report(gpt2_bridge, "the cat sat on the mat .")
    f = r.to_frame()
    assert r.kind == "LayerNorm" and len(f) == 2 * N_LAYERS + 1
    assert (f.eps_rel_err_max < 1e-5).all() and (f.ones_cos_max < 1e-5).all()


# 2 controls keep this path test fast; tlgeom rightly warns that no onset can then reach alpha
@pytest.mark.filterwarnings("ignore:controls=2.*no onset can be significant:UserWarning")
def test_cli_report_on_a_local_gpt2_folder(gpt2_dir, tmp_path):
    out = tmp_path / "rep"
    assert (
        cli.main(
            [
                "report",
                "--model",
                str(gpt2_dir[0]),
                "--text",
                "the cat sat on the mat . the dog ran .",
                "--n-sims",
                "19",
                "--controls",
                "2",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads((out / "results.json").read_text())
    assert doc["meta"]["model"]["n_layers"] == N_LAYERS
    assert len(list(out.glob("*.png"))) == 5
