"""The floors hold: every import in ``ponder`` points down (the contract in pyproject.toml).

A new upward import (say, an online stop policy importing training code) fails here, and so in CI.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def lint_imports(config: Path | None = None, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    args = [exe, "--no-cache"] + (["--config", str(config)] if config else [])
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_layer_contract_is_kept() -> None:
    done = lint_imports()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_an_upward_import_breaks_the_contract(tmp_path: Path) -> None:
    """The contract is not vacuous: a copy of the package where the online judge imports
    offline training code is refused, naming the arrow."""
    copy = tmp_path / "src"
    shutil.copytree(ROOT / "ponder", copy / "ponder", ignore=shutil.ignore_patterns("__pycache__"))
    model = copy / "ponder" / "stopping" / "model.py"
    model.write_text(model.read_text() + "\nimport ponder.learning.drr.train  # upward\n")
    (copy / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    done = lint_imports(copy / "pyproject.toml", cwd=copy)
    assert done.returncode != 0
    assert "ponder.stopping is not allowed to import ponder.learning" in done.stdout
