"""The null engine's costs as ratios, side by side in one run (issue 25). Read the ratios: these
machines are shared and noisy.

1. ``forward``: ``record_trajectories`` of TEXTS real texts (Lee news, cut to at most MAX_TOKENS tokens)
   on smollm2-135m: the unit every other row is divided by.
2. ``raw``: ``compare_to_nulls`` with the raw space's default nulls (rotation, shuffle) at N_SIMS.
3. ``normalized``: ``compare_to_nulls(space="normalized")`` with its default null (sphere_rotation).
4. ``rotation sampler``: the rotation null alone on the same texts, the reduced chain against the ambient
   (d-dimensional) form, per simulation.
5. ``commands``: ``tlgeom report`` vs ``tlgeom landscape`` as commands (model load and imports included),
   and ``tlgeom --help`` vs ``python -c "import torch"``.

    OMP_NUM_THREADS=1 python benchmarks/bench_nulls.py                  # the issue's setting (1 thread)
    python benchmarks/bench_nulls.py --n-sims 199 --parts forward raw   # a quicker look
    python benchmarks/bench_nulls.py --device cuda --threads 4          # where a GPU is lent

Options: --texts (20), --max-tokens (48), --n-sims (999), --threads (1), --device (cpu),
--parts (forward raw normalized sampler commands), --ambient-sims (20: the ambient sampler is timed on
fewer simulations and scaled per simulation, as printed).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PARTS = ("forward", "raw", "normalized", "sampler", "commands", "examples")

#: The README's examples, run as printed (each in a fresh interpreter: imports and model load included).
MINIMAL = """
import tlgeom
model = tlgeom.load_model("smollm2-135m")
traj = tlgeom.record_trajectories(model, ["The river bank was muddy.", "She went to the bank."])
angles = tlgeom.turning_angles(traj)
print(tlgeom.length_to_chord(traj)[0])
"""
CURVATURE = """
import tlgeom
from tlgeom.data import PARAGRAPH, load_corpus
model = tlgeom.load_model("smollm2-135m")
land = tlgeom.curvature_landscape(model, PARAGRAPH)
land.plot()
texts = [d.text for d in load_corpus("lee", n=8, max_words=20)]
report = tlgeom.curvature_test(model, texts, n_sims=249, seed=0)
print(report.summary())
"""


def _time(fn, reps: int = 1) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _cmd_time(argv: list[str], reps: int = 1) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))

    def run() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)

    return _time(run, reps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--texts", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--n-sims", type=int, default=999)
    ap.add_argument("--ambient-sims", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    ap.add_argument("--write", default=None, help="also write the table as CSV (e.g. results/costs.csv)")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    rows: list[tuple[str, float, str]] = []

    class Rows(list):  # printed as they come, so a long run shows its progress
        def append(self, row: tuple[str, float, str]) -> None:
            super().append(row)
            print(f"  {row[0]}: {row[1]:.2f} s {row[2]}", flush=True)

    rows = Rows()
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, {os.cpu_count()} cores")
    if set(args.parts) - {"commands"}:
        import tlgeom
        from tlgeom.data import load_corpus
        from tlgeom.experiments.curvature import _texts, compare_to_nulls
        from tlgeom.models.conventions import model_normalization
        from tlgeom.report.claims import truncate_to_tokens
        from tlgeom.stats.nulls import get_null

        model = tlgeom.load_model("smollm2-135m", device=args.device)
        n_special = len(model.to_tokens("")[0])
        docs = load_corpus("lee", n=args.texts)
        texts = [truncate_to_tokens(model.tokenizer, d.text, args.max_tokens, n_special)[0] for d in docs]
        tlgeom.record_trajectories(model, texts[:2])  # warm-up
        traj = None

        def forward() -> None:
            nonlocal traj
            traj = tlgeom.record_trajectories(model, texts)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()

        t_fwd = _time(forward, 2)
        assert traj is not None
        ntok = int(traj.mask.sum())
        rows.append(("record_trajectories (forward)", t_fwd, f"{len(texts)} texts, {ntok} tokens"))
        states = _texts(traj)[0]
        if "raw" in args.parts:
            t = _time(lambda: compare_to_nulls(states, n_sims=args.n_sims, seed=0))
            rows.append((f"compare_to_nulls raw (rotation, shuffle), {args.n_sims} sims", t, ""))
        if "normalized" in args.parts:
            norm, eps = model_normalization(model)
            t = _time(
                lambda: compare_to_nulls(states, n_sims=args.n_sims, seed=0, space="normalized", norm=norm, eps=eps)
            )
            rows.append((f"compare_to_nulls normalized (sphere_rotation), {args.n_sims} sims", t, ""))
        if "sampler" in args.parts:
            null = get_null("rotation")
            lengths = sorted({x.shape[0] for x in states})
            groups = [torch.stack([x for x in states if x.shape[0] == n]) for n in lengths]
            s = args.ambient_sims

            def draw(method: str) -> None:
                for x in groups:
                    null.simulate(x, s, torch.Generator(device=x.device).manual_seed(0), method=method)

            t_red = _time(lambda: draw("reduced"))
            t_amb = _time(lambda: draw("ambient"))
            rows.append((f"rotation null, reduced chain ({s} sims, per length group)", t_red, ""))
            rows.append(
                (f"rotation null, ambient d x r frames ({s} sims)", t_amb, f"ambient / reduced = {t_amb / t_red:.2f}")
            )
    if "commands" in args.parts:
        exe = str(Path(sys.executable).with_name("tlgeom"))
        with tempfile.TemporaryDirectory() as tmp:
            t_land = _cmd_time([exe, "landscape", "--out", f"{tmp}/l", "--overwrite", "--no-progress"])
            t_rep = _cmd_time([exe, "report", "--out", f"{tmp}/r", "--overwrite", "--no-progress"])
        t_help = _cmd_time([exe, "--help"], 3)
        t_torch = _cmd_time([sys.executable, "-c", "import torch"], 3)
        rows.append(("tlgeom landscape (command)", t_land, ""))
        rows.append(("tlgeom report (command)", t_rep, f"report / landscape = {t_rep / t_land:.2f} (target <= 2.5)"))
        rows.append(("python -c 'import torch'", t_torch, ""))
        rows.append(("tlgeom --help", t_help, f"help / import torch = {t_help / t_torch:.2f} (target <= 0.5)"))
    if "examples" in args.parts:
        py = sys.executable
        rows.append(("README minimal example (python, model load included)", _cmd_time([py, "-c", MINIMAL]), ""))
        rows.append(("README curvature example (8 texts, 249 simulations)", _cmd_time([py, "-c", CURVATURE]), ""))
        exe = str(Path(sys.executable).with_name("tlgeom"))
        with tempfile.TemporaryDirectory() as tmp:
            cold = [exe, "report", "--out", f"{tmp}/r", "--no-progress"]
            env_cold = dict(
                os.environ, TLGEOM_CACHE=f"{tmp}/cache", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")
            )
            t = time.perf_counter()
            subprocess.run(cold, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env_cold)
            rows.append(
                ("make demo's report with no weight cache (dequantises the GGUF first)", time.perf_counter() - t, "")
            )
    base = next((t for name, t, _ in rows if name.startswith("record_trajectories")), None)
    print("\n| measure | seconds | × forward | note |\n| --- | --- | --- | --- |")
    for name, t, note in rows:
        ratio = f"{t / base:.2f}" if base else ""
        print(f"| {name} | {t:.2f} | {ratio} | {note} |")
    if args.write:
        write_costs(args.write, rows, base, machine(args))


def machine(args: argparse.Namespace) -> str:
    """The machine a run measured, in words: cores, torch threads, device, torch version."""
    import torch

    return f"{os.cpu_count()}-core CPU, {args.threads} torch thread(s), {args.device}, torch {torch.__version__}"


def write_costs(path: str, rows: list[tuple[str, float, str]], base: float | None, where: str) -> None:
    """The table as CSV (measure, seconds, x_forward, note, machine): the README's costs block reads it."""
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["measure", "seconds", "x_forward", "note", "machine"])
        for name, t, note in rows:
            w.writerow([name, f"{t:.3f}", f"{t / base:.4f}" if base else "", note, where])
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
