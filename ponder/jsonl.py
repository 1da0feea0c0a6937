"""Crash-safe, resumable JSON Lines files: cut a torn last line, append durably, read rows back.

Use these for any append-only ``*.jsonl`` that a rerun continues (eval records, behaviour
collections, SSA targets, benchmark logs): call ``cut_torn_tail`` once before appending so the
next line starts on a line of its own, write each finished item with ``append_line`` (or
``write_line`` on a file kept open) so a crash or Ctrl-C loses nothing written, and read what is
done with ``read_json_lines``.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any, TextIO


def cut_torn_tail(path: str | Path) -> None:
    """Cut a last line that a crash left without its newline (a missing file is left alone)."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    with path.open("r+b") as f:
        f.truncate(data.rfind(b"\n") + 1)


def write_line(f: TextIO, text: str) -> None:
    """Write ``text`` and a newline to the open file ``f``, flushed and fsynced."""
    f.write(text + "\n")
    f.flush()
    os.fsync(f.fileno())


def append_line(path: str | Path, text: str) -> None:
    """Append ``text`` as one line to ``path``, flushed and fsynced before returning."""
    with Path(path).open("a", encoding="utf-8") as f:
        write_line(f, text)


def read_text(path: str | Path) -> str:
    """The text of ``path``, gunzipped when its name ends in ``.gz``."""
    path = Path(path)
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8") as f:
            return f.read()
    return path.read_text(encoding="utf-8")


def read_json_lines(path: str | Path) -> list[dict[str, Any]]:
    """Every line of ``path`` that parses as JSON (a torn last line is skipped; none if absent).
    A ``*.jsonl.gz`` file is read through gzip."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in read_text(path).splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:
            continue
    return rows
