"""`ponder ssa plot`: a train or grpo run's log drawn as a PNG; a directory without a log is a
clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.errors import InputError
from ponder.learning.ssa.curve import moving_average, plot_run, read_log


def write_log(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_moving_average_uses_the_steps_seen_so_far() -> None:
    assert moving_average([1.0, 0.0, 1.0, 1.0], 2) == [1.0, 0.5, 0.5, 1.0]
    assert moving_average([0.0, 3.0], 8) == [0.0, 1.5]


def test_grpo_and_train_runs_plot(tmp_path: Path) -> None:
    grpo = tmp_path / "grpo"
    write_log(grpo / "grpo_log.jsonl", [
        {"step": i + 1, "reward": (i % 3) / 2, "groups_with_signal": i % 3, "groups": 2}
        for i in range(12)
    ])  # fmt: skip
    train = tmp_path / "train"
    write_log(train / "train_log.jsonl", [{"step": i + 1, "loss": 1 / (i + 1)} for i in range(5)])
    assert read_log(grpo)[0] == "grpo" and read_log(train)[0] == "train"
    png = plot_run(grpo)
    assert png == grpo / "curve.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    other = tmp_path / "elsewhere" / "t.png"
    assert main(["ssa", "plot", "--run", str(train), "--out", str(other)]) == 0
    assert other.read_bytes()[:4] == b"\x89PNG" and other.stat().st_size > 1000


def test_a_directory_without_a_log_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="grpo_log.jsonl or train_log.jsonl"):
        plot_run(tmp_path)
    write_log(tmp_path / "grpo_log.jsonl", [])
    with pytest.raises(InputError, match="no steps yet"):
        plot_run(tmp_path)
