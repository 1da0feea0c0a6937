import asyncio

import pytest

from ponder import ChainOfThought, FakeBackend, Orchestrator
from ponder.errors import AuthenticationFailed, InputError, UpstreamServerError
from ponder.orchestrator import RetryPolicy
from ponder.protocol.actions import Fork, Generate, Note, Outcome, Task
from ponder.protocol.requests import Completion, GenerationRequest, SamplingParams
from ponder.protocol.strategy import Strategy

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=0.002, jitter_s=0)


async def test_cot_extracts_answer_and_counts_usage():
    backend = FakeBackend(["First 48 / 2 = 24, then 48 + 24 = 72. \\boxed{72}"])
    result = await Orchestrator(backend).run(ChainOfThought(), "How many clips?")
    assert result.answer == "72"
    assert result.usage.calls == 1
    assert result.usage.completion_tokens == 13
    assert result.usage.prompt_tokens > 0
    assert not result.budget_limited
    types = [e["type"] for e in result.trace.events]
    assert types == ["run_start", "request", "completion", "run_end"]


async def test_empty_question_is_refused():
    with pytest.raises(InputError):
        await Orchestrator(FakeBackend([])).run(ChainOfThought(), "   ")


async def test_retryable_errors_are_retried_then_succeed():
    backend = FakeBackend([UpstreamServerError("boom"), "\\boxed{3}"])
    result = await Orchestrator(backend, retry=FAST_RETRY).run(ChainOfThought(), "q")
    assert result.answer == "3"
    assert len(backend.requests) == 2
    assert len(result.trace.of_type("retry")) == 1


async def test_auth_failure_is_not_retried_and_surfaces():
    backend = FakeBackend([AuthenticationFailed("401 bad key"), "\\boxed{3}"])
    with pytest.raises(AuthenticationFailed):
        await Orchestrator(backend, retry=FAST_RETRY).run(ChainOfThought(), "q")
    assert len(backend.requests) == 1


async def test_budget_caps_max_tokens_and_is_never_exceeded():
    long_answer = " ".join(["word"] * 500)
    backend = FakeBackend(lambda req, i: long_answer)
    result = await Orchestrator(backend, budget_tokens=100).run(ChainOfThought(max_tokens=400), "q")
    assert result.budget_limited
    assert result.usage.total_tokens <= 100
    assert backend.requests[0].params.max_tokens < 400


async def test_budget_exhausted_returns_best_so_far():
    class TwoCalls(Strategy):
        name = "two-calls-test"

        def flow(self, task: Task):
            req = GenerationRequest(prompt=task.question, params=SamplingParams(max_tokens=50))
            [first] = yield Generate.of(req)
            [second] = yield Generate.of(req)
            assert isinstance(first, Completion)
            if not isinstance(second, Completion):
                return Outcome(answer=first.text, text=first.text, budget_limited=second.budget)
            return Outcome(answer=second.text, text=second.text)

    backend = FakeBackend(lambda req, i: " ".join(["w"] * 50))
    result = await Orchestrator(backend, budget_tokens=60).run(TwoCalls(), "q")
    assert result.budget_limited
    assert result.answer is not None
    assert result.usage.calls == 1
    assert result.trace.of_type("budget_exhausted")


async def test_fork_runs_subflows_concurrently_and_failures_are_values():
    class Fan(Strategy):
        name = "fan-test"

        def flow(self, task: Task):
            def one(i: int):
                if i == 2:
                    raise ValueError("sample 2 broke")
                [c] = yield Generate.of(GenerationRequest(prompt=f"{task.question}{i}"))
                return Outcome(answer=c.text, text=c.text)

            results = yield Fork([one(i) for i in range(4)])
            yield Note("voted", {"n": len(results)})
            answers = [r.answer for r in results if isinstance(r, Outcome)]
            errors = [r for r in results if isinstance(r, Exception)]
            return Outcome(answer=",".join(answers), text="", data={"errors": len(errors)})

    backend = FakeBackend(lambda req, i: "x", delay_s=0.05)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    result = await Orchestrator(backend).run(Fan(), "q")
    assert loop.time() - t0 < 0.15  # three 50 ms calls overlapped, not 150 ms in series
    assert result.answer == "x,x,x"
    assert result.outcome.data["errors"] == 1
    spans = {e["span"] for e in result.trace.of_type("request")}
    assert spans == {"0", "1", "3"}
    assert result.trace.of_type("decision")[0]["event"] == "voted"


async def test_run_timeout_cancels_and_closes_the_flow():
    closed = []

    class Slow(Strategy):
        name = "slow-test"

        def flow(self, task: Task):
            try:
                yield Generate.of(GenerationRequest(prompt="q"))
            finally:
                closed.append(True)
            return Outcome(answer=None, text="")

    backend = FakeBackend(lambda req, i: "x", delay_s=5)
    with pytest.raises(TimeoutError):
        await Orchestrator(backend, timeout_s=0.1).run(Slow(), "q")
    assert closed == [True]


async def test_trace_round_trips_as_jsonl(tmp_path):
    from ponder.orchestrator.trace import read_trace

    result = await Orchestrator(FakeBackend(["\\boxed{1}"])).run(ChainOfThought(), "q")
    path = result.trace.write_jsonl(tmp_path / "t.jsonl")
    events = read_trace(path)
    assert [e["seq"] for e in events] == list(range(len(events)))
    assert events[-1]["answer"] == "1"
    assert all(e["run_id"] == result.run_id for e in events)
