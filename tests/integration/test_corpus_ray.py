"""The Ray Data engine of the corpus runner on a local 2-worker Ray with a tiny model: the same rows as the
local engine, and a run whose worker is killed mid-run (resuming an earlier local run) loses and duplicates
nothing."""

from __future__ import annotations

import functools
import os
import sys
import time
import warnings

import numpy as np
import pytest

ray = pytest.importorskip("ray")

from tlgeom.data import PARAGRAPH  # noqa: E402
from tlgeom.experiments.corpus import read_rows, run_corpus  # noqa: E402
from tlgeom.experiments.corpus import tests_from_rows as rebuild_tests  # noqa: E402
from tlgeom.models.load import tiny_model  # noqa: E402

#: 11 sentences and one document longer than the tiny model's context (64 tokens): cut into windows
DOCS = [f"{i}: {s.strip()}." for i, s in enumerate(PARAGRAPH.split(".")) if s.strip()] + [PARAGRAPH]
OPTS = {"nulls": ["rotation", "shuffle"], "n_sims": 9, "seed": 3, "progress": False, "batch_tokens": 256}
NUMERIC = ["n_tokens", "mean_angle", "mean_abs_dev", "median_ltc", "mean_log_ltc"]


def _killing_loader(marker: str):
    """The tiny model, whose worker process dies (``os._exit``) at its second forward pass if ``marker``
    does not exist yet (it creates it first: only one worker dies, once)."""
    model = tiny_model("gpt2", seed=0)
    calls = [0]

    def die(module, args):
        calls[0] += 1
        if calls[0] == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)

    model.register_forward_pre_hook(die)
    return model


def _failing_loader(marker: str):
    """The tiny model, whose second forward pass raises (an application error Ray does not retry) once."""
    model = tiny_model("gpt2", seed=0)
    calls = [0]

    def fail(module, args):
        calls[0] += 1
        if calls[0] == 2 and not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError("planted failure")

    model.register_forward_pre_hook(fail)
    return model


@pytest.fixture(scope="module")
def local_ray():
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the loaders above, in the workers
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=200 * 1024**2)
    ray.data.DataContext.get_current()  # its first construction warns (ray 2.60), here rather than in pytest.warns
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "run"
    run_corpus(tiny_model("gpt2", seed=0), DOCS, out, **OPTS)
    return out, read_rows(out).sort_values("id").reset_index(drop=True)


def _assert_same_rows(a, b):
    assert list(a.id) == list(b.id) and list(a.doc_id) == list(b.doc_id)
    np.testing.assert_allclose(a[NUMERIC].to_numpy(float), b[NUMERIC].to_numpy(float), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.stack(a.layer_mean_angle), np.stack(b.layer_mean_angle), atol=1e-5)
    for col in [c for c in a.columns if c.startswith("sims:")]:
        np.testing.assert_allclose(np.stack(a[col]), np.stack(b[col]), rtol=1e-6, atol=1e-6)


def test_ray_engine_equals_local_engine(local_ray, local_rows, tmp_path):
    local_out, want = local_rows
    t0 = time.perf_counter()
    run = run_corpus(
        functools.partial(tiny_model, "gpt2", seed=0),
        DOCS,
        tmp_path / "ray",
        engine="ray",
        workers=2,
        docs_per_task=3,
        **OPTS,
    )
    print(f"\nray engine, 2 workers: {run.n_windows} windows in {time.perf_counter() - t0:.1f} s")
    got = read_rows(tmp_path / "ray").sort_values("id").reset_index(drop=True)
    assert len(want) > len(DOCS)  # the long document was windowed
    _assert_same_rows(want, got)
    assert run.n_windows == len(want) and run.n_skipped == 0
    assert run.stats.n_windows == len(want) and run.stats.n_tokens == int(want.n_tokens.sum())
    a, b = rebuild_tests(local_out, n_boot=99), rebuild_tests(tmp_path / "ray", n_boot=99)
    np.testing.assert_allclose(a[["observed", "null_mean", "p"]], b[["observed", "null_mean", "p"]], rtol=1e-6)


# Ray restarts a killed actor and retries its task; should that restart fail, tlgeom's own resume takes over
@pytest.mark.filterwarnings("ignore:the Ray run failed:RuntimeWarning")
def test_killed_worker_and_resume_lose_and_duplicate_nothing(local_ray, local_rows, tmp_path):
    _, want = local_rows
    out = tmp_path / "run"
    first = run_corpus(tiny_model("gpt2", seed=0), DOCS[:4], out, **OPTS)  # an earlier, partial, local run
    marker = str(tmp_path / "killed")
    run = run_corpus(
        functools.partial(_killing_loader, marker), DOCS, out, engine="ray", workers=2, docs_per_task=2, **OPTS
    )
    assert os.path.exists(marker)  # a worker did die mid-run
    assert run.n_skipped == first.n_windows == 4
    got = read_rows(out)
    assert got.id.is_unique  # Ray's retry of the killed task rewrote its parts under the same names
    _assert_same_rows(want, got.sort_values("id").reset_index(drop=True))
    assert run.stats.n_windows == len(want)


def test_a_failed_ray_stage_is_resumed(local_ray, local_rows, tmp_path):
    """A task that fails with an error Ray does not retry: the run resumes with a fresh pool (a warning says
    so), and the rows are complete and unique."""
    _, want = local_rows
    marker = str(tmp_path / "failed")
    with warnings.catch_warnings(record=True) as caught:  # not pytest.warns: it re-raises Ray's own warnings
        warnings.simplefilter("always")
        run = run_corpus(
            functools.partial(_failing_loader, marker), DOCS, tmp_path / "run", engine="ray", workers=2, **OPTS
        )
    assert any(w.category is RuntimeWarning and "resuming" in str(w.message) for w in caught)
    assert os.path.exists(marker)
    got = read_rows(tmp_path / "run")
    assert got.id.is_unique
    _assert_same_rows(want, got.sort_values("id").reset_index(drop=True))
    assert run.stats.n_windows == len(want)
    with pytest.raises(Exception, match="retries"):
        run_corpus("smollm2-135m", DOCS, tmp_path / "x", engine="ray", retries=-1)


def test_ray_engine_refuses_a_model_object(local_ray, tmp_path):
    from tlgeom import TlgeomError

    with pytest.raises(TlgeomError, match="model.*name.*loader|picklable zero-argument"):
        run_corpus(tiny_model("gpt2", seed=0), DOCS, tmp_path / "x", engine="ray")
    with pytest.raises(TlgeomError, match="workers"):
        run_corpus("smollm2-135m", DOCS, tmp_path / "x", engine="ray", workers=0)
    with pytest.raises(TlgeomError, match="engine='ray' only"):
        run_corpus(tiny_model("gpt2", seed=0), DOCS, tmp_path / "x", workers=2)
