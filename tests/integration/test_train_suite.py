"""Runs the SSA training tests (tests/train) in their own virtual environment.

Training needs torch, transformers and peft, which the main install never needs, so they live in
a separate venv created by scripts/setup-train-venv.sh ($PONDER_TRAIN_VENV, default .venv-train).
This one test runs that venv's pytest as a subprocess and asserts every training test passed
(LoRA steps on a tiny model, the loss mask, and the export round trip through llama.cpp's
converter into the embedded llama-server), so the single README test command covers them. A
missing venv is a failure with instructions, never a skip.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"tests/train": 6}


def train_python() -> Path:
    venv = Path(os.environ.get("PONDER_TRAIN_VENV") or ROOT / ".venv-train")
    return venv / "bin" / "python"


def test_train_suite_passes_in_its_own_venv() -> None:
    python = train_python()
    if not python.exists():
        pytest.fail(
            f"no train venv at {python.parent.parent}: run scripts/setup-train-venv.sh first "
            "(or set PONDER_TRAIN_VENV to one it created)"
        )
    env = {**os.environ, "PONDER_TRAIN_TESTS": "1"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *EXPECTED],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"train tests failed (rc {proc.returncode}):\n{tail}"
    m = re.search(r"(\d+) passed", proc.stdout)
    assert m is not None, tail
    assert int(m.group(1)) == sum(EXPECTED.values()), tail
    assert not re.search(r"\d+ (skipped|failed|error)", proc.stdout), tail
