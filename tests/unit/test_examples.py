import subprocess
import sys
from pathlib import Path

from ponder.config import ChainConfig

ROOT = Path(__file__).resolve().parents[2]


def test_custom_strategy_example_runs():
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "custom_strategy.py")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "answer: 42" in proc.stdout


def test_example_chain_config_is_valid():
    cfg = ChainConfig.load(ROOT / "examples" / "chain.yaml")
    assert cfg.budget.total_tokens == 4000
