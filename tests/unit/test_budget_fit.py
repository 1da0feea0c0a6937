"""The hard budget's reservation (issue 29): what a call is reserved before it leaves, and what a
run does when its budget cannot fit a call.

A native ``n`` call is reserved its prompt once (the upstream bills it once), a fanned-out one a
prompt per choice; a ``sample`` draw that cannot fit ``k`` samples at their full ``max_tokens`` runs
the most that fit and says so; a budget that cannot fit even one call of the run is a typed
``BudgetTooSmall`` saying what one call needs, with no call made; a failed attempt charged in full
still leaves room for a retry of fewer samples. Engine tests with ``FakeBackend`` (word counts),
the backend's own rule against the fault-injecting loopback upstream."""

from __future__ import annotations

import pytest

from ponder import ChainOfThought, FakeBackend, Orchestrator
from ponder.backends import OpenAICompatibleBackend
from ponder.cli import main
from ponder.errors import BudgetExhausted, BudgetTooSmall, GenerationTimeout
from ponder.orchestrator import RetryPolicy
from ponder.orchestrator.budget import Grant, TokenBudget
from ponder.protocol.actions import Task
from ponder.protocol.requests import Completion, GenerationRequest, SamplingParams
from ponder.strategies import AdaptiveSample, ParallelSample
from tests.unit.fault_upstream import Faults, FaultUpstream

FAST = RetryPolicy(max_attempts=3, initial_backoff_s=0.001, max_backoff_s=0.002, jitter_s=0)
QUESTION = "What is 2+2?"


def short(req: GenerationRequest, i: int) -> str:
    return "so \\boxed{4}"


def sample(k: int = 4, max_tokens: int = 200, **kw: object) -> ParallelSample:
    inner = ChainOfThought(temperature=0.7, max_tokens=max_tokens)
    return ParallelSample(k=k, seed=1, inner=inner, **kw)


async def prompt_of(backend: FakeBackend) -> int:
    return await backend.count_prompt_tokens(ChainOfThought().request(Task(QUESTION)))


# -- the reservation rule ------------------------------------------------------------------------


def test_a_native_n_call_reserves_its_prompt_once_a_fanned_out_one_per_choice():
    assert TokenBudget(1000).reserve(43, 4, 200, prompt_once=True) == Grant(4, 200, 843)
    assert TokenBudget(1000).reserve(43, 4, 200) == Grant(4, 200, 972)


def test_a_call_that_needs_all_n_choices_shrinks_max_tokens_as_before():
    assert TokenBudget(900).reserve(43, 4, 200) == Grant(4, 182, 900)
    assert TokenBudget(100).reserve(30, 1, 400) == Grant(1, 70, 100)


def test_a_call_that_takes_fewer_choices_gets_the_most_that_fit_at_full_max_tokens():
    assert TokenBudget(900).reserve(43, 4, 200, min_n=1) == Grant(3, 200, 729)
    assert TokenBudget(1000).reserve(238, 4, 200, prompt_once=True, min_n=1) == Grant(3, 200, 838)
    # not even one full choice: one, with max_tokens cut to what is left (as a single call)
    assert TokenBudget(200).reserve(43, 4, 200, prompt_once=True, min_n=1) == Grant(1, 157, 200)


def test_too_small_is_the_whole_budget_short_of_one_call_exhausted_is_what_is_left():
    with pytest.raises(BudgetTooSmall) as e:
        TokenBudget(10).reserve(43, 4, 200, prompt_once=True, min_n=1)
    assert e.value.budget_tokens == 10 and e.value.needed_tokens == 43 + 16
    assert isinstance(e.value, BudgetExhausted)
    assert "needs at least 59" in str(e.value)
    b = TokenBudget(300)
    assert b.reserve(43, 1, 200) == Grant(1, 200, 243)
    with pytest.raises(BudgetExhausted) as e2:
        b.reserve(43, 1, 200)
    assert not isinstance(e2.value, BudgetTooSmall)


# -- through the engine ----------------------------------------------------------------------------


async def test_native_n_sample_is_reserved_its_prompt_once():
    backend = FakeBackend(short)
    p = await prompt_of(backend)
    result = await Orchestrator(backend, budget_tokens=p + 4 * 200).run(sample(), QUESTION)
    [req] = backend.requests
    assert (req.params.n, req.params.max_tokens) == (4, 200)
    assert not result.budget_limited and result.answer == "4"


async def test_sample_runs_the_most_samples_that_fit_and_says_so():
    backend = FakeBackend(short)
    p = await prompt_of(backend)
    budget = p + 2 * 200 + 50
    result = await Orchestrator(backend, budget_tokens=budget).run(sample(), QUESTION)
    [req] = backend.requests
    assert (req.params.n, req.params.max_tokens) == (2, 200)
    assert result.answer == "4" and result.budget_limited
    assert result.usage.total_tokens <= budget
    out = result.outcome
    assert (out.data["samples_asked"], out.data["samples_drawn"]) == (4, 2)
    cut = [s for s in out.samples if s.answer is None]
    assert len(out.samples) == 4 and len(cut) == 2
    assert all(s.budget_limited and isinstance(s.error, BudgetExhausted) for s in cut)
    [note] = [e for e in result.trace.of_type("decision") if e["event"] == "budget_fewer_samples"]
    assert (note["asked"], note["drawn"]) == (4, 2)
    [cut_event] = result.trace.of_type("budget_cut")
    assert (cut_event["n"], cut_event["asked_n"]) == (2, 4)


async def test_adaptive_draws_what_fits_in_its_last_round_and_says_so():
    backend = FakeBackend(lambda req, i: "w " * 199 + "\\boxed{4}")  # 200 tokens each
    p = await prompt_of(backend)
    budget = (p + 2 * 200) + (p + 200) + 10  # the first round fits 2 samples, the second 1
    strat = AdaptiveSample(
        k=4, schedule=[2, 4], threshold=1.0, min_agree=4, seed=1, inner=sample().inner
    )
    result = await Orchestrator(backend, budget_tokens=budget).run(strat, QUESTION)
    assert [r.params.n for r in backend.requests] == [2, 1]
    assert result.answer == "4" and result.budget_limited
    assert result.usage.total_tokens <= budget
    assert result.outcome.data["samples_drawn"] == 3


class FanOut(FakeBackend):
    """Bills the prompt once per choice, as n single calls do (and says so: the default)."""

    async def prompt_billed_once(self, request: GenerationRequest) -> bool:
        return request.params.n == 1

    async def generate(self, request: GenerationRequest) -> Completion:
        done = await super().generate(request)
        done.prompt_tokens *= request.params.n
        done.calls = request.params.n
        return done


async def test_a_fanned_out_sample_is_reserved_a_prompt_per_choice():
    backend = FanOut(short)
    p = await prompt_of(backend)
    full = await Orchestrator(backend, budget_tokens=4 * (p + 200)).run(sample(), QUESTION)
    assert backend.requests[-1].params.n == 4 and not full.budget_limited
    budget = 4 * (p + 200) - 1
    fewer = await Orchestrator(backend, budget_tokens=budget).run(sample(), QUESTION)
    assert (backend.requests[-1].params.n, backend.requests[-1].params.max_tokens) == (3, 200)
    assert fewer.usage.total_tokens <= budget and fewer.budget_limited


@pytest.mark.parametrize("strategy", [ChainOfThought(), sample()], ids=["cot", "sample"])
async def test_a_budget_that_cannot_fit_one_call_raises_saying_what_one_call_needs(strategy):
    backend = FakeBackend(short)
    p = await prompt_of(backend)
    with pytest.raises(BudgetTooSmall) as e:
        await Orchestrator(backend, budget_tokens=10).run(strategy, QUESTION)
    assert backend.requests == []
    assert e.value.budget_tokens == 10 and e.value.needed_tokens == p + 16
    assert f"needs at least {p + 16}" in str(e.value)


async def test_a_retry_after_an_attempt_charged_in_full_runs_the_samples_that_still_fit():
    calls = []

    def first_times_out(req: GenerationRequest, i: int) -> object:
        if i == 0:
            calls.append(req.params.n)
        if len(calls) == 1:
            return GenerationTimeout("the upstream did not answer in time")
        return "so \\boxed{4}"

    backend = FakeBackend(first_times_out)
    p = await prompt_of(backend)
    budget = (p + 4 * 200) + (p + 200) + 10  # the failed attempt is charged p + 800
    orch = Orchestrator(backend, budget_tokens=budget, retry=FAST)
    result = await orch.run(sample(), QUESTION)
    assert calls == [4, 1]
    assert result.answer == "4" and result.outcome.data["samples_drawn"] == 1
    assert result.trace.of_type("retry")[0]["charged"] == p + 800


# -- the OpenAI-compatible backend: when the upstream bills the prompt once ---------------------


def n_request(n: int) -> GenerationRequest:
    return GenerationRequest(
        messages=({"role": "user", "content": "q"},), params=SamplingParams(n=n, max_tokens=20)
    )


async def test_the_openai_backend_bills_the_prompt_once_only_where_native_n_is_known():
    with FaultUpstream() as up:
        for mode, before, after in [("native", True, True), ("fanout", False, False)]:
            async with OpenAICompatibleBackend(base_url=up.base_url, model="m", n_mode=mode) as b:
                assert await b.prompt_billed_once(n_request(4)) is before
                await b.generate(n_request(4))
                assert await b.prompt_billed_once(n_request(4)) is after
        async with OpenAICompatibleBackend(base_url=up.base_url, model="m") as b:  # auto
            assert await b.prompt_billed_once(n_request(1)) is True
            assert await b.prompt_billed_once(n_request(4)) is False  # it may still fan out
            await b.generate(n_request(4))
            assert up.log[-1].n == 4
            assert await b.prompt_billed_once(n_request(4)) is True
            assert await b.prompt_billed_once(n_request(2)) is True
            assert await b.prompt_billed_once(n_request(8)) is False  # never tried natively
    with FaultUpstream(Faults(refuse_n=True)) as up:
        async with OpenAICompatibleBackend(base_url=up.base_url, model="m") as b:
            await b.generate(n_request(4))  # refused natively, fanned out
            assert await b.prompt_billed_once(n_request(4)) is False


# -- ponder run ------------------------------------------------------------------------------------


def test_ponder_run_says_what_one_call_needs(capsys):
    with FaultUpstream() as up:
        code = main(["run", "q", "--base-url", up.base_url, "--model", "m", "--budget", "5"])
        assert up.log == []
    err = capsys.readouterr().err
    assert code == 1 and "BudgetTooSmall" in err and "needs at least" in err, err
