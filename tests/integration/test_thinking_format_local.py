"""The thinking format on the real llama.cpp server: a budgeted run stops thinking at the budget
and answers.

The embedded Qwen2.5 0.5B served in the thinking format (``backend: {kind: local, thinking:
true}``: a think-first system prompt and a ``<think>`` prefill; a prompted instruct model, not a
trained reasoner) writes a long thinking for a two-step question; a 48-token thinking budget cuts
it, Ponder closes it and the model answers. Tiny on purpose (one greedy run, at most 200 tokens):
the CPUs are shared.
"""

from __future__ import annotations

import pytest

from ponder.config import ChainConfig

pytestmark = pytest.mark.integration

QUESTION = (
    "A shop sells pens at 3 dollars each. Tom buys 7 pens and a notebook for 5 dollars. "
    "How much does he pay?"
)
BUDGET = 48


LEAD = "The final answer is \\boxed{"


@pytest.mark.parametrize("lead", [None, "answer_lead"])
async def test_a_budgeted_run_stops_thinking_at_the_budget_and_answers(lead: str | None) -> None:
    thinking: dict[str, object] = {"answer_tokens": 64}
    if lead is not None:  # the answer lead follows the closing marker
        thinking["answer_lead"] = lead
    cfg = ChainConfig.from_dict(
        {
            "backend": {"kind": "local", "thinking": True, "threads": 1, "n_parallel": 1},
            "strategy": {"name": "cot", "max_tokens": 200},
            "thinking_budget": BUDGET,
            "thinking": thinking,
        }
    )
    async with cfg.session() as session:
        r = await session.run(cfg.strategy, QUESTION)
    data = r.outcome.data
    assert data["thinking_bound"] == "forcing" and data["thinking_cut"] is True
    first, *rest = r.trace.of_type("completion")
    assert first["completion_tokens"] <= BUDGET  # the server's own count of the thinking call
    assert first["choices"][0]["finish_reason"] == "length"
    assert 0 < data["reasoning_tokens"] <= BUDGET + 2  # counted by the server's tokenizer
    assert r.usage.reasoning_tokens == data["reasoning_tokens"]
    [cont] = [e for e in r.trace.of_type("request") if e.get("assistant_prefix")]
    assert cont["assistant_prefix"].startswith("<think>\n")
    assert cont["assistant_prefix"].endswith("</think>\n\n" + (LEAD if lead else ""))
    assert r.text.strip()  # an answer, not an empty reply
    if lead:  # led, the model writes a number into the box (an answer, graded from the text)
        assert r.text.startswith(LEAD) and r.answer is not None, r.text
    assert "</think>" not in r.text
    assert data["tokens"] <= 200 and r.usage.completion_tokens == data["tokens"]
