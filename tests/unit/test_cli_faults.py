"""``ponder run`` under faults: one clear line and the right exit status, never a traceback; the
trace is written for failed runs; the key comes from the environment or a file."""

from __future__ import annotations

import json
import os

import pytest

from ponder.cli import main
from tests.unit.fault_upstream import Faults, FaultUpstream


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("url", ["http//127.0.0.1:1/v1", "ftp://127.0.0.1/v1", "http://:80/v1"])
def test_malformed_or_non_http_base_url_is_a_config_error(capsys, url):
    code, _, err = run(capsys, "q", "--base-url", url, "--model", "m")
    assert code == 2 and "base_url" in err and len(err.strip().splitlines()) == 1


def test_unwritable_trace_path_is_refused_before_the_call(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with FaultUpstream() as up:
        code, _, err = run(
            capsys, "q", "--base-url", up.base_url, "--model", "m", "--trace", f"{blocker}/t.jsonl"
        )
        assert code == 2 and "--trace" in err
        assert up.log == []  # nothing spent on an answer that would be lost


def test_a_failed_run_writes_its_trace_and_says_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-upstream-7890")
    trace = tmp_path / "run.jsonl"
    with FaultUpstream(Faults(http_401=1.0)) as up:
        code, _, err = run(
            capsys,
            "q",
            "--base-url",
            up.base_url,
            "--model",
            "m",
            "--strategy",
            "sample",
            "--trace",
            str(trace),
        )
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "AuthenticationFailed" in err and "****" not in err
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events[-1]["type"] == "run_error"


def test_timeout_flag_stops_a_hung_upstream(capsys):
    with FaultUpstream(Faults(hang=1.0, hang_s=10.0)) as up:
        code, _, err = run(
            capsys, "q", "--base-url", up.base_url, "--model", "m", "--timeout", "0.5"
        )
    assert code == 1 and ("RunTimeout" in err or "GenerationTimeout" in err), err


def test_a_budget_that_fits_no_call_exits_1(capsys):
    with FaultUpstream() as up:
        code, _, err = run(capsys, "q", "--base-url", up.base_url, "--model", "m", "--budget", "5")
        assert up.log == []
    assert code == 1 and "budget" in err


def test_api_key_from_a_file_and_a_warning_for_the_flag(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("PONDER_CLI_API_KEY", raising=False)
    keyfile = tmp_path / "key"
    keyfile.write_text("sk-from-file-123\n")
    with FaultUpstream() as up:
        code, _, err = run(
            capsys, "q", "--base-url", up.base_url, "--model", "m", "--api-key-file", str(keyfile)
        )
        assert code == 0 and up.auth_seen[-1] == "Bearer sk-from-file-123"
        assert "warning" not in err
        code, _, err = run(
            capsys, "q", "--base-url", up.base_url, "--model", "m", "--api-key", "sk-flag-456"
        )
        assert code == 0 and up.auth_seen[-1] == "Bearer sk-flag-456"
        assert "visible" in err and "ps" in err
    os.environ.pop("PONDER_CLI_API_KEY", None)
