"""Run a test suite with another virtual environment's pytest and assert that all of it passed.

Use ``assert_suite_passes`` from a one-test module for suites whose dependencies live in a venv
of their own (a setup script creates it): the venv's pytest runs as a subprocess in the repository
root with ``$flag`` set to 1, and the test fails unless it exits 0 with exactly the
expected number of passes and nothing skipped, failed or errored. A missing venv is a failure
that names the setup script, never a skip.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def assert_suite_passes(
    expected: Mapping[str, int],
    *,
    venv_var: str,
    default_venv: str,
    flag: str,
    what: str,
    setup: str,
    timeout: float = 1200,
) -> None:
    """Run ``expected``'s paths with the venv's pytest; assert every one of their tests passed.

    ``expected`` maps each path to its number of tests. The venv is ``$venv_var`` (default
    ``ROOT/default_venv``); ``what`` names the suite in messages ("train", "vLLM") and ``setup``
    is the script that creates the venv.
    """
    python = Path(os.environ.get(venv_var) or ROOT / default_venv) / "bin" / "python"
    if not python.exists():
        pytest.fail(
            f"no {what} venv at {python.parent.parent}: run {setup} first "
            f"(or set {venv_var} to one it created)"
        )
    env = {**os.environ, flag: "1"}
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *expected],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, f"{what} tests failed (rc {proc.returncode}):\n{tail}"
    m = re.search(r"(\d+) passed", proc.stdout)
    assert m is not None, tail
    assert int(m.group(1)) == sum(expected.values()), tail
    assert not re.search(r"\d+ (skipped|failed|error)", proc.stdout), tail
