"""``ponder run --trace``: a path that cannot be written is refused before the call, naming it;
an answer is never lost because its trace could not be written (it is printed, with a warning);
a pipe or a device (``/dev/stdout``, a named pipe) gets the trace written in place."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path

import pytest

from ponder.cli import main
from ponder.orchestrator.trace import Trace
from tests.unit.fault_upstream import FaultUpstream


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.skipif(not Path("/proc/version").is_file(), reason="needs Linux /proc")
def test_a_path_that_only_looks_writable_is_refused_before_the_call(capsys):
    # /proc/version passes os.access(W_OK) for root, yet nothing can be written there
    with FaultUpstream() as up:
        code, out, err = run(
            capsys, "q", "--base-url", up.base_url, "--model", "m", "--trace", "/proc/version"
        )
        assert up.log == []  # nothing spent on an answer that would be lost
    assert code == 2 and "--trace" in err and "/proc/version" in err
    assert len(err.strip().splitlines()) == 1


def test_an_answer_is_printed_when_its_trace_cannot_be_written(capsys, tmp_path, monkeypatch):
    def disk_full(self: Trace, path: object, **kw: object) -> Path:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(Trace, "write_jsonl", disk_full)
    trace = tmp_path / "run.jsonl"
    with FaultUpstream() as up:
        code, out, err = run(
            capsys, "q", "--base-url", up.base_url, "--model", "m", "--trace", str(trace)
        )
    assert code == 0 and "Answer: " in out and "(none found)" not in out
    assert "warning" in err and str(trace) in err and "No space left" in err


def test_a_named_pipe_gets_the_trace_in_place(capsys, tmp_path):
    fifo = tmp_path / "trace.pipe"
    os.mkfifo(fifo)
    got: list[str] = []

    def read() -> None:
        with fifo.open(encoding="utf-8") as f:
            got.append(f.read())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    with FaultUpstream() as up:
        code, out, err = run(
            capsys, "q", "--base-url", up.base_url, "--model", "m", "--trace", str(fifo)
        )
    reader.join(10)
    assert code == 0 and "Answer: " in out, err
    assert fifo.exists() and not fifo.is_file()  # still the pipe, not replaced by a file
    events = [json.loads(line) for line in got[0].splitlines()]
    assert events[-1]["type"] == "run_end"
