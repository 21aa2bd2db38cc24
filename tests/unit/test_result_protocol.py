"""Every result class follows the one Result protocol (tlgeom._result): summary() -> str,
to_frame() -> tidy DataFrame, headline() -> JSON-ready dict, plot(ax=None) -> Figure, save()."""

from __future__ import annotations

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tlgeom._result import Result, finite_z, new_panels  # noqa: E402

TEXT = "the cat sat on the mat . the dog ran to the river bank and saw a big red ball ."


def _sphere_metric(r: float = 1.5):
    """The round sphere of radius r in (θ, φ) coordinates: g = diag(r², r² sin²θ); R = 2/r²."""

    def g(x):
        return torch.diag(torch.stack([torch.ones_like(x[0]) * r**2, (r * torch.sin(x[0])) ** 2]))

    return g


def _build(name, tiny_gpt2, tiny_llama):
    from tlgeom.experiments import circuits, heat, landscape, patching, projection, riemann, sphere, structure
    from tlgeom.geometry import heat as gheat
    from tlgeom.geometry import riemann as griemann
    from tlgeom.models.trajectory import record_trajectories

    if name == "Trajectories":
        return record_trajectories(tiny_gpt2, ["the cat sat on the mat", "a dog"])
    if name == "Landscape":
        return landscape.curvature_landscape(tiny_gpt2, TEXT)
    if name == "SphereReport":
        return sphere.sphere_report(tiny_llama, TEXT)
    if name == "SingularDirections":
        return circuits.singular_directions(tiny_gpt2, "QK", k=2, n_nearest=3)
    if name == "KeyValueProbe":
        return circuits.noun_probe(tiny_gpt2, ["cat", "dog", "river"], k=2, layers=[0])
    if name == "TrajectoryProjection":
        return projection.project_trajectory(tiny_gpt2, "the cat sat on the mat")
    if name == "HeadSignature":
        return riemann.head_metric_signature(tiny_llama, seed=1)
    if name == "HeatAttention":
        return heat.attention_vs_heat_kernel(tiny_gpt2, TEXT, 0, heads=[0, 1], n_t=6, n_sigma=7)
    if name == "StructureResult":
        pytest.importorskip("spacy")
        return structure.curvature_vs_structure(tiny_gpt2, TEXT, n_perm=99)
    if name == "PatchAttribution":
        return patching.patch_attribution(
            tiny_gpt2, "cat sat on the mat .", "dog sat on the mat .", "sat", progress=False
        )
    if name == "GraphLaplacian":
        z = torch.randn(60, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        return gheat.graph_laplacian(z / z.norm(dim=-1, keepdim=True))
    if name == "Curvature":
        x = torch.tensor([[0.7, 0.1], [1.1, 0.4], [1.4, -0.2]], dtype=torch.float64)
        return griemann.curvature(_sphere_metric(), x)
    if name in ("StraighteningTest", "GibberishTest", "EntropyTest"):
        from tlgeom.experiments import entropy, gibberish, straightening

        texts = [TEXT, "a river runs through the old town near the hills .", "we ate bread and cheese today ."]
        run = {
            "StraighteningTest": straightening.straightening_test,
            "GibberishTest": gibberish.gibberish_test,
            "EntropyTest": entropy.entropy_test,
        }[name]
        return run(tiny_gpt2, texts, n_resamples=99)
    if name == "Geodesic":
        x0 = torch.tensor([[1.0, 0.0], [0.8, 0.3]], dtype=torch.float64)
        v0 = torch.tensor([[0.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
        return griemann.geodesic(_sphere_metric(), x0, v0, t1=1.0, n_steps=10)
    raise AssertionError(name)


RESULTS = [
    "Trajectories",
    "Landscape",
    "SphereReport",
    "SingularDirections",
    "KeyValueProbe",
    "TrajectoryProjection",
    "HeadSignature",
    "HeatAttention",
    "StructureResult",
    "PatchAttribution",
    "GraphLaplacian",
    "Curvature",
    "Geodesic",
    "StraighteningTest",
    "GibberishTest",
    "EntropyTest",
]


@pytest.mark.parametrize("name", RESULTS)
def test_result_protocol(name, tiny_gpt2, tiny_llama, tmp_path):
    res = _build(name, tiny_gpt2, tiny_llama)
    assert type(res).__name__ == name and isinstance(res, Result)
    # summary: a non-empty string, and str() is the summary; never an infinite z
    text = res.summary()
    assert isinstance(text, str) and text.strip() and str(res) == text
    assert "inf" not in text.replace("info", "")
    # tests(): every test report says what its n counts (issue 27)
    if hasattr(res, "tests") and name != "CorpusRun":
        t = res.tests()
        assert {"n", "inference_unit"} <= set(t.columns), name
        assert set(t.inference_unit) <= {"text", "pair", "edit", "layer", "head", "document", "window"}, name
    # to_frame: a tidy DataFrame (flat string column names, at least one row)
    frame = res.to_frame()
    assert isinstance(frame, pd.DataFrame) and len(frame) > 0
    assert all(isinstance(c, str) for c in frame.columns) and not isinstance(frame.index, pd.MultiIndex)
    # headline: JSON-ready as it is (no NaN, no inf, no tensors)
    head = res.headline()
    assert isinstance(head, dict) and head
    assert json.loads(json.dumps(head, allow_nan=False)) == head
    # plot() and plot(ax=ax) both return the Figure, and plot(ax=ax) draws into ax's figure
    fig = res.plot()
    assert isinstance(fig, Figure) and fig.axes
    plt.close(fig)
    own, ax = plt.subplots()
    if name == "TrajectoryProjection" and res.coords.shape[-1] == 3:  # pragma: no cover - 2 components here
        ax = own.add_subplot(projection="3d")
    assert res.plot(ax=ax) is own
    plt.close(own)
    # save: png + csv + json (the headline and the summary)
    paths = res.save(tmp_path, "r")
    assert {p.name for p in paths.values()} == {"r.png", "r.csv", "r.json"}
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(pd.read_csv(paths["csv"])) == len(frame)
    doc = json.loads(paths["json"].read_text())
    assert doc["result"] == name and doc["headline"] == head and doc["summary"] == text
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tlgeom-manifest.json", "r.csv", "r.json", "r.png"]


def test_new_panels_splits_one_axes_and_checks_counts():
    fig, ax = plt.subplots()
    fig2, grid = new_panels(ax, 2, 3)
    assert fig2 is fig and grid.shape == (2, 3) and len(fig.axes) == 6 and ax not in fig.axes
    _, pair = plt.subplots(1, 2)
    with pytest.raises(ValueError, match="ax="):
        new_panels(pair, 1, 3)
    plt.close("all")


def test_finite_z_never_prints_inf():
    assert finite_z(1.234) == "z +1.23"
    assert "inf" not in finite_z(math.inf) and "no spread" in finite_z(-math.inf)
    assert "no spread" in finite_z(math.nan)
