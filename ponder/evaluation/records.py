"""Per-question result records: build them, append them crash-safely, read them back to resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ponder.behaviour.datasets import Item
from ponder.grading import is_equivalent
from ponder.jsonl import cut_torn_tail, read_json_lines, write_line
from ponder.orchestrator.engine import RunResult


def make_record(config: str, item: Item, result: RunResult) -> dict[str, Any]:
    u = result.usage
    rec: dict[str, Any] = {
        "config": config,
        "id": item.id,
        "question": item.question,
        "gold": item.gold,
        "prediction": result.answer,
        "correct": is_equivalent(result.answer, item.gold),
        "prompt_tokens": u.prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "total_tokens": u.total_tokens,
        "calls": u.calls,
        "failed_calls": u.failed_calls,
        "wall_time_s": round(u.wall_time_s, 3),
        "trace_id": result.run_id,
        "budget_limited": result.budget_limited,
    }
    if result.p_correct is not None:
        rec["p_correct"] = result.p_correct
    if result.abstained:
        rec["abstained"] = True
        withheld = result.outcome.data.get("withheld_answer")  # for the coverage curve
        rec["withheld_correct"] = is_equivalent(withheld, item.gold)
    samples = result.outcome.samples
    if samples:
        rec["samples"] = [s.answer for s in samples]
        rec["sample_correct"] = [is_equivalent(s.answer, item.gold) for s in samples]
        rec["oracle"] = any(rec["sample_correct"])
    return rec


def error_record(config: str, item: Item, exc: BaseException, wall_s: float) -> dict[str, Any]:
    return {
        "config": config,
        "id": item.id,
        "question": item.question,
        "gold": item.gold,
        "prediction": None,
        "correct": False,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "calls": 0,
        "wall_time_s": round(wall_s, 3),
        "trace_id": None,
        "error": f"{type(exc).__name__}: {exc}",
    }


def record_line(record: dict[str, Any]) -> str:
    """One record as its line in ``<config>.jsonl`` (the format every results file has)."""
    return json.dumps(record, default=str)


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records already written; a torn last line (a crash mid-write) is ignored."""
    return read_json_lines(path)


class RecordWriter:
    """Appends one JSON line per record and flushes it to disk at once."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cut_torn_tail(path)  # so the next record starts on a line of its own
        self._f = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        write_line(self._f, record_line(record))

    def close(self) -> None:
        self._f.close()
