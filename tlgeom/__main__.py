"""Command line: ``python -m tlgeom demo [--model smollm2-135m] [--out figures]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tlgeom", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="curvature of a paragraph's token trajectories on an offline model")
    demo.add_argument("--model", default="smollm2-135m")
    demo.add_argument("--out", default="figures")
    demo.add_argument("--text", default=None, help="text to analyse (default: the bundled paragraph)")
    args = parser.parse_args(argv)
    from .demo import run_demo

    run_demo(model_name=args.model, out=args.out, text=args.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
