"""A record of every request, completion, failure and decision of a run, writable as JSONL.

Each event is one JSON object with ``run_id``, ``seq``, ``t`` (seconds since the run started),
``type`` and ``span`` (the path of forks that led to it, e.g. ``"0/3"`` for sample 3 of the
first fork). Secrets never enter a trace: backends are not given a place to put them.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TraceListener = Callable[[dict[str, Any]], None]


@dataclass
class Trace:
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    events: list[dict[str, Any]] = field(default_factory=list)
    _t0: float = field(default_factory=time.perf_counter)
    listener: TraceListener | None = field(default=None, repr=False, compare=False)
    """Optional callback called with each event as it is recorded (progress reporting, e.g. the
    proxy's streaming progress). It must be quick and must not raise."""

    def record(self, type_: str, span: str, **data: Any) -> None:
        event = {
            "run_id": self.run_id,
            "seq": len(self.events),
            "t": round(time.perf_counter() - self._t0, 4),
            "type": type_,
            "span": span,
            **data,
        }
        self.events.append(event)
        if self.listener is not None:
            self.listener(event)

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    def to_jsonl(self) -> str:
        return "".join(json.dumps(e, default=str) + "\n" for e in self.events)

    def write_jsonl(self, path: str | Path, *, append: bool = False) -> Path:
        """Write the trace; the file is replaced atomically unless ``append``. A path that is a
        pipe or a device (``/dev/stdout``, a named pipe) is written in place, never replaced."""
        path = Path(path)
        if path.exists() and not path.is_file():
            with path.open("a" if append else "w", encoding="utf-8") as f:
                f.write(self.to_jsonl())
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        if append:
            with path.open("a", encoding="utf-8") as f:
                f.write(self.to_jsonl())
            return path
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.to_jsonl(), encoding="utf-8")
        tmp.replace(path)
        return path


class TraceNotWritten(UserWarning):
    """A run's trace could not be written (the run's answer is kept: see ``ponder.arun``)."""


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
