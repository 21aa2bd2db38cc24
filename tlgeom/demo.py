"""The main job (``make demo``): the curvature of a paragraph's token trajectories."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch


def run_demo(model_name: str = "smollm2-135m", out: str = "figures", text: str | None = None) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import tlgeom
    from tlgeom.data import PARAGRAPH

    text = text or PARAGRAPH
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = tlgeom.load_model(model_name)
    t1 = time.perf_counter()
    res = tlgeom.stream(model, text)
    t2 = time.perf_counter()
    angles = torch.rad2deg(res["turning_angles"][0])  # [pos, layer-1]
    ltc = res["length_to_chord"][0]
    norms = res["step_norms"][0]
    n_pos, n_turns = angles.shape
    print(f"tlgeom demo — {model_name}: {model.cfg.n_layers} layers, d_model {model.cfg.d_model}")
    print(f"text: {n_pos} tokens; loaded in {t1 - t0:.1f} s; one streamed forward pass in {t2 - t1:.2f} s")
    print(f"turning angle between consecutive layer steps (degrees; 0 = straight on, 90 = orthogonal):")
    print(f"  median {angles.nanmedian():.1f}, mean {angles.nanmean():.1f}; "
          f"isotropic random steps in R^{model.cfg.d_model} would give 90 ± {math.degrees(1 / math.sqrt(model.cfg.d_model)):.1f}")
    layer_mean = angles.nanmean(0)
    sharpest = int(layer_mean.argmax())
    flattest = int(layer_mean.argmin())
    print(f"  sharpest turn on average between blocks {sharpest} and {sharpest + 1} ({layer_mean[sharpest]:.1f}°), "
          f"straightest between blocks {flattest} and {flattest + 1} ({layer_mean[flattest]:.1f}°)")
    print(f"length-to-chord ratio (path length / straight-line distance; 1 = straight): "
          f"median {ltc.nanmedian():.2f}, range {ltc[~ltc.isnan()].min():.2f}–{ltc[~ltc.isnan()].max():.2f}")
    print(f"largest layer step: block {int(norms.nanmean(0).argmax())} "
          f"(mean ‖Δ‖ {norms.nanmean(0).max():.1f} vs median {norms.nanmedian():.1f})")
    summary = {"n_tokens": n_pos, "median_angle_deg": float(angles.nanmedian()), "median_ltc": float(ltc.nanmedian())}
    figure = _landscape_figure(model, res, outdir)
    print(f"figure: {figure}")
    return summary


def _landscape_figure(model, res, outdir: Path) -> Path:
    import matplotlib.pyplot as plt

    from . import _compat

    angles = torch.rad2deg(res["turning_angles"][0]).cpu().numpy()
    toks = _compat.str_tokens(model, res["tokens"], res["mask"])[0]
    fig, ax = plt.subplots(figsize=(8, max(6, 0.12 * len(toks))))
    im = ax.imshow(angles, aspect="auto", cmap="magma", vmin=0, vmax=180, interpolation="nearest")
    ax.set_yticks(range(len(toks)))
    ax.set_yticklabels([repr(t)[1:-1] for t in toks], fontsize=5)
    ax.set_xlabel("turning point (between block l and l+1 steps)")
    fig.colorbar(im, ax=ax, label="turning angle (degrees)")
    ax.set_title("curvature landscape")
    fig.tight_layout()
    path = outdir / "landscape.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
