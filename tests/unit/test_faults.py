"""Reliability under faults, at the engine and backend: the hard budget counted as the upstream
counts, typed failures through every chain, malformed bodies, n refusals, Retry-After.

All against ``FaultUpstream`` (real HTTP on loopback, the official ``openai`` client inside the
backend), whose log holds every token it generated, delivered or not.
"""

from __future__ import annotations

import time

import pytest

from ponder import ChainOfThought, Orchestrator
from ponder.backends import OpenAICompatibleBackend
from ponder.backends.base import bound_tokens
from ponder.errors import (
    AllSamplesFailed,
    AuthenticationFailed,
    BadRequestError,
    BudgetTooSmall,
    MalformedResponse,
    PonderError,
    RateLimited,
    RunTimeout,
)
from ponder.orchestrator import RetryPolicy
from ponder.orchestrator.policy import retry_delay
from ponder.protocol.requests import GenerationRequest, SamplingParams
from ponder.secrets import redact
from ponder.strategies.adaptive import AdaptiveSample
from ponder.strategies.parallel import ParallelSample
from tests.unit.fault_upstream import Faults, FaultUpstream, fake_tokens

FAST = RetryPolicy(max_attempts=4, initial_backoff_s=0.001, max_backoff_s=0.002, jitter_s=0)
CJK = "甲乙丙丁戊己庚辛壬癸" * 66  # 660 characters
DIGITS = " ".join(str(10**11 + i * 7919) for i in range(60))


def backend(up: FaultUpstream, **kw) -> OpenAICompatibleBackend:
    kw.setdefault("timeout_s", 5.0)
    key = "sk-upstream-7890"
    return OpenAICompatibleBackend(base_url=up.base_url, model="m", api_key=key, **kw)


def sample(k: int = 4, max_tokens: int = 400) -> ParallelSample:
    inner = ChainOfThought(temperature=0.7, max_tokens=max_tokens)
    return ParallelSample(k=k, seed=1, inner=inner)


# -- the hard budget ----------------------------------------------------------------------------


def test_token_bounds_are_upper_bounds_of_a_bpe_like_count():
    for text in (CJK, DIGITS, "plain English words", "é" * 50):
        assert bound_tokens(text) >= fake_tokens(text)
    assert bound_tokens(CJK) >= len(CJK) * 2  # characters/3 would be 220


@pytest.mark.parametrize("question", [CJK, DIGITS], ids=["cjk", "digits"])
async def test_dense_prompts_never_overrun_the_budget(question):
    with FaultUpstream(tokenize=False) as up:
        for budget in (500, 1400, 3000):
            async with backend(up) as b:
                orch = Orchestrator(b, budget_tokens=budget, retry=FAST)
                try:
                    result = await orch.run(ChainOfThought(max_tokens=512), question)
                except BudgetTooSmall as exc:  # the prompt's safe bound is over the budget
                    assert up.generated() == 0 and exc.needed_tokens > budget
                    continue
            spent = up.generated()
            assert spent <= budget, (budget, spent)
            assert result.usage.total_tokens == up.delivered()
            up.log.clear()


async def test_budget_crossed_by_one_token_is_refused_and_at_the_limit_allowed():
    with FaultUpstream(Faults(words=(400, 400))) as up:
        async with backend(up) as b:
            first = await Orchestrator(b, budget_tokens=5000).run(ChainOfThought(), "2+2?")
            prompt = first.usage.prompt_tokens  # learned exactly from the upstream's usage
            up.log.clear()
            ok = await Orchestrator(b, budget_tokens=prompt + 16).run(ChainOfThought(), "2+2?")
            [sent] = ok.trace.of_type("request")
            assert sent["params"]["max_tokens"] == 16 and ok.budget_limited
            assert prompt < up.generated() <= prompt + 16
            up.log.clear()
            with pytest.raises(BudgetTooSmall) as refused:
                await Orchestrator(b, budget_tokens=prompt + 15).run(ChainOfThought(), "2+2?")
            assert up.generated() == 0 and refused.value.needed_tokens == prompt + 16


async def test_n_gt_1_usage_is_what_the_upstream_counted():
    with FaultUpstream(tokenize=False) as up:
        async with backend(up) as b:
            for question in ("What is 2+2?", DIGITS[:200]):
                result = await Orchestrator(b).run(sample(4), question)
                assert result.usage.completion_tokens == sum(g.completion_tokens for g in up.log), (
                    question
                )
                up.log.clear()


async def test_llama_style_short_usage_for_n_is_not_trusted():
    """A server that reports one choice's tokens for n > 1 is charged a safe bound instead."""

    class OneChoiceUsage(FaultUpstream):
        pass

    with FaultUpstream(tokenize=False) as up:
        async with backend(up, n_mode="native") as b:
            req = GenerationRequest(
                messages=({"role": "user", "content": "q"},),
                params=SamplingParams(n=4, max_tokens=300),
            )
            done = await b.generate(req)
            honest = done.completion_tokens
            assert honest == up.log[-1].completion_tokens
            for ch in done.choices:
                ch.completion_tokens = 0
            await b._tokens.count_choices(req, done.choices, honest // 4)  # one choice's worth
            assert done.completion_tokens >= honest


async def test_failed_attempts_after_generation_are_charged_in_full():
    # every attempt generates its reply and then the connection drops
    with FaultUpstream(Faults(drop=1.0, words=(200, 200))) as up:
        async with backend(up) as b:
            budget = 2000
            orch = Orchestrator(b, budget_tokens=budget, retry=FAST)
            with pytest.raises(PonderError):
                await orch.run(ChainOfThought(max_tokens=400), "What is 2+2?")
            assert up.generated() <= budget
            assert len(up.log) < FAST.max_attempts  # the budget stopped the retries


async def test_hangs_are_timeouts_charged_in_full():
    with FaultUpstream(Faults(hang=1.0, hang_s=2.0, words=(100, 100))) as up:
        async with backend(up, timeout_s=0.3) as b:
            budget = 700
            orch = Orchestrator(b, budget_tokens=budget, retry=FAST)
            with pytest.raises(PonderError):
                await orch.run(ChainOfThought(max_tokens=300), "What is 2+2?")
            assert up.generated() <= budget


# -- typed failures -----------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", [ChainOfThought(), sample(3), AdaptiveSample(k=4, seed=0)])
async def test_a_401_is_the_typed_error_behind_every_chain(strategy):
    with FaultUpstream(Faults(http_401=1.0)) as up:
        async with backend(up) as b:
            with pytest.raises(PonderError) as exc:
                await Orchestrator(b, retry=FAST).run(strategy, "q")
    err = exc.value
    cause = err.primary if isinstance(err, AllSamplesFailed) else err
    assert isinstance(cause, AuthenticationFailed) and cause.status == 401
    assert "sk-up****7890" not in str(err)  # a masked key is scrubbed too


async def test_all_samples_cut_at_max_tokens_is_an_answerless_outcome_like_cot():
    with FaultUpstream(Faults(words=(300, 300))) as up:
        async with backend(up) as b:
            result = await Orchestrator(b).run(sample(3, max_tokens=20), "q")
            cot = await Orchestrator(b).run(ChainOfThought(max_tokens=20), "q")
    assert result.answer is None and result.outcome.data["finish_reason"] == "length"
    assert cot.answer is None and cot.outcome.data["finish_reason"] == "length"


@pytest.mark.parametrize("seed", [1, 2])  # odd answers: text/html; even: truncated JSON
async def test_malformed_200_bodies_are_retryable_backend_errors(seed):
    with FaultUpstream(Faults(malformed=1.0, seed=seed)) as up:
        async with backend(up) as b:
            with pytest.raises(MalformedResponse):
                await Orchestrator(b, retry=FAST).run(ChainOfThought(), "q")
            assert len(up.log) == FAST.max_attempts
    assert MalformedResponse.retryable


async def test_a_run_timeout_is_a_ponder_error():
    with FaultUpstream(Faults(hang=1.0, hang_s=3.0)) as up:
        async with backend(up) as b:
            with pytest.raises(RunTimeout) as exc:
                await Orchestrator(b, timeout_s=0.3).run(ChainOfThought(), "q")
    assert isinstance(exc.value, PonderError) and isinstance(exc.value, TimeoutError)


# -- n > 1 fallback -----------------------------------------------------------------------------


async def test_only_a_refusal_of_n_switches_to_fan_out(rm):
    def ctx_too_long(body, path, i):
        return 400, {"error": {"message": "maximum context length is 4096 tokens"}}

    srv = rm(ctx_too_long)
    b = OpenAICompatibleBackend(base_url=srv.url + "/v1", model="m")
    req = GenerationRequest(
        messages=({"role": "user", "content": "q"},), params=SamplingParams(n=3)
    )
    with pytest.raises(BadRequestError):
        await b.generate(req)
    assert b._native_n_ok is not False and len(srv.seen) == 1  # not retried as fan-out
    await b.aclose()
    with FaultUpstream(Faults(refuse_n=True)) as up:
        async with backend(up) as b2:
            done = await b2.generate(req)
            assert done.calls == 3 and b2._native_n_ok is False


# -- Retry-After --------------------------------------------------------------------------------


def test_retry_waits_at_least_retry_after_and_gives_up_past_the_cap():
    assert retry_delay(FAST, 1, 0.2) == pytest.approx(0.2)
    assert retry_delay(FAST, 1, None) < 0.01
    assert retry_delay(FAST, 1, 3600.0) is None


async def test_retry_after_is_read_and_honoured():
    with FaultUpstream(Faults(http_429=1.0, retry_after="1")) as up:
        async with backend(up) as b:
            t0 = time.perf_counter()
            policy = RetryPolicy(max_attempts=2, initial_backoff_s=0.001, jitter_s=0)
            with pytest.raises(RateLimited) as exc:
                await Orchestrator(b, retry=policy).run(ChainOfThought(), "q")
            assert time.perf_counter() - t0 >= 0.95
    assert exc.value.retry_after_s == 1.0


# -- secrets ------------------------------------------------------------------------------------


def test_one_redactor_scrubs_keys_and_their_masked_forms():
    key = "sk-proj-abcdefghijklmnop7890"
    text = f"bad key {key}; also 'sk-p****7890' and sk-proj-********7890, keep ***"
    out = redact(text, [key])
    assert key not in out and "sk-p****" not in out and "****7890" not in out
    assert out.endswith("keep ***")


async def test_reward_backend_uses_the_one_redactor(rm):
    from ponder.backends.reward import RewardModelBackend
    from ponder.protocol.requests import RewardRequest

    key = "sk-reward-abcdefgh-9876"
    srv = rm(lambda body, path, i: (400, {"error": {"message": "bad key sk-r****9876"}}))
    b = RewardModelBackend(base_url=srv.url, api_key=key)
    with pytest.raises(PonderError) as exc:
        await b.reward(RewardRequest(messages=({"role": "user", "content": "q"},)))
    await b.aclose()
    assert "****9876" not in str(exc.value) and "[redacted]" in str(exc.value)


async def test_chat_prompts_are_counted_exactly_by_vllms_tokenizer(rm):
    def handler(body, path, i):
        if path.endswith("/tokenize"):
            if "messages" in body:  # vLLM renders the chat template and counts it
                return 200, {"count": 42, "max_model_len": 4096, "tokens": list(range(42))}
            return 200, {"tokens": [1, 2, 3]}
        return 400, {}

    srv = rm(handler)
    b = OpenAICompatibleBackend(
        base_url=srv.url + "/v1", model="m", tokenize_url=srv.url + "/tokenize"
    )
    req = GenerationRequest(messages=({"role": "user", "content": CJK},))
    assert await b.count_prompt_tokens(req) == 42
    await b.aclose()


async def test_llama_cpp_tokenizer_is_not_mistaken_for_a_chat_count(rm):
    srv = rm(lambda body, path, i: (200, {"tokens": []}))
    b = OpenAICompatibleBackend(
        base_url=srv.url + "/v1", model="m", tokenize_url=srv.url + "/tokenize"
    )
    req = GenerationRequest(messages=({"role": "user", "content": CJK},))
    assert await b.count_prompt_tokens(req) >= bound_tokens(CJK)
    await b.aclose()


async def test_adaptive_on_digit_dense_text_stays_within_budget():
    with FaultUpstream(tokenize=False) as up:
        async with backend(up) as b:
            for budget in (800, 2000, 5000):
                strat = AdaptiveSample(k=8, seed=0, inner=ChainOfThought(temperature=0.7))
                orch = Orchestrator(b, budget_tokens=budget, retry=FAST)
                try:
                    await orch.run(strat, DIGITS)
                except BudgetTooSmall as exc:  # the prompt's safe bound is over the budget
                    assert up.generated() == 0 and exc.needed_tokens > budget
                assert up.generated() <= budget, budget
                up.log.clear()
