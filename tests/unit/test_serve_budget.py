"""``ponder serve`` budgets, hard and still useful (issue 29): a budget that cannot fit one call is
a 400 ``budget_too_small`` saying what one call needs (0 upstream calls), and a budgeted ``sample``
chain reserves what the upstream will bill (the prompt once for a native ``n`` call, exactly where
a tokenizer or an earlier usage tells) and runs the most samples that fit instead of answering
empty. The official ``openai`` client, the real proxy, the fault-injecting loopback upstream; the
upstream's own log is the referee of the hard budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from ponder.serve import ServeConfig, ServerThread
from tests.unit.fault_upstream import Faults, FaultUpstream, chat_prompt_tokens, fake_tokens

KEY = "sk-upstream-SECRET-abcdef7890"
INNER = {"name": "cot", "temperature": 0.7, "max_tokens": 200}
CHAINS = {
    "cot": {"strategy": {"name": "cot", "max_tokens": 200}},
    "sc4": {"strategy": {"name": "sample", "k": 4, "seed": 0, "inner": INNER}},
    # examples/serve.yaml's own sc4
    "sc4-4000": {
        "strategy": {"name": "sample", "k": 4, "inner": {"name": "cot", "max_tokens": 300}},
        "budget": {"total_tokens": 4000},
    },
}
MSG = [{"role": "user", "content": "What is 2+2?"}]
QUESTION_300_WORDS = " ".join(["The farmer counts the apples in each basket again."] * 33) + (
    " How many baskets are there if each holds 2+2 apples?"
)


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch):
    monkeypatch.setenv("PONDER_TEST_BUDGET_KEY", KEY)


def serve_cfg(up: FaultUpstream, trace_dir: Path | None = None, **upstream: Any) -> ServeConfig:
    data: dict[str, Any] = {
        "upstream": {
            "kind": "openai",
            "base_url": up.base_url,
            "model": "m",
            "api_key_env": "PONDER_TEST_BUDGET_KEY",
            "timeout_s": 5.0,
            **upstream,
        },
        "chains": CHAINS,
        "retry": {"max_attempts": 3, "initial_backoff_s": 0.01, "max_backoff_s": 0.02},
    }
    if trace_dir is not None:
        data["trace_dir"] = str(trace_dir)
    return ServeConfig.from_dict(data)


def chat_tokenizer(rm) -> str:
    """A vLLM-style ``/tokenize`` that renders a chat as the fault upstream bills it."""

    def count(body: dict[str, Any], path: str, n: int) -> tuple[int, dict[str, Any]]:
        if "messages" not in body:  # a text (a choice's completion tokens)
            return 200, {"tokens": [0] * fake_tokens(str(body.get("prompt", "")))}
        tokens = chat_prompt_tokens(body["messages"])
        return 200, {"count": tokens, "tokens": [0] * tokens, "max_model_len": 32768}

    return f"{rm(count).url}/tokenize"


def client(srv: ServerThread) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0)


def ask(srv: ServerThread, chain: str, budget: int | None = None, **kw: Any) -> Any:
    body = {"budget_tokens": budget} if budget is not None else {}
    return client(srv).chat.completions.create(
        model=f"ponder:{chain}", messages=kw.pop("messages", MSG), extra_body={"ponder": body}, **kw
    )


def decisions(trace_dir: Path, event: str) -> list[dict[str, Any]]:
    out = []
    for path in trace_dir.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            e = json.loads(line)
            if e["type"] == "decision" and e.get("event") == event:
                out.append(e)
    return out


# -- a budget that cannot fit one call -----------------------------------------------------------


@pytest.mark.parametrize(
    "chain,budget,n",
    [("cot", 10, 1), ("sc4", 10, 1), ("sc4", 400, 4), ("cot", 300, 8)],
    ids=["cot-10", "sample-10", "sample-400-n4", "cot-300-n8"],
)
def test_a_budget_that_cannot_fit_one_call_is_400_saying_what_one_call_needs(chain, budget, n):
    with FaultUpstream() as up, ServerThread(serve_cfg(up)) as srv:
        with pytest.raises(openai.BadRequestError) as e:
            ask(srv, chain, budget, n=n)
        assert up.log == []  # not one upstream call
    assert e.value.status_code == 400
    body = e.value.body
    assert isinstance(body, dict) and body["code"] == "budget_too_small", body
    assert "needs at least" in body["message"], body["message"]


# -- sample: the prompt once for native n, the most samples that fit -----------------------------


def test_sample_k4_with_budget_1000_runs_instead_of_answering_empty(tmp_path):
    """The issue's case: no tokenizer (the prompt is reserved at its safe bound, about 240 for
    the 102 tokens the upstream counts), max_tokens 200, budget 1000: k=4 samples do not fit,
    fewer do, and the answer says so."""
    with FaultUpstream(tokenize=False) as up, ServerThread(serve_cfg(up, tmp_path)) as srv:
        out = ask(srv, "sc4", 1000)
        assert up.generated() <= 1000
        assert len(up.log) == 1 and 1 <= up.log[0].n < 4
    assert out.choices[0].message.content and "\\boxed{" in out.choices[0].message.content
    assert out.choices[0].finish_reason == "budget_exhausted"  # the budget cut samples: said
    extra = out.model_extra["ponder"]
    assert extra["budget_limited"] is True and extra["answers"][0] is not None
    assert out.usage.total_tokens == up.delivered()
    [note] = decisions(tmp_path, "budget_fewer_samples")
    assert note["asked"] == 4 and note["drawn"] == up.log[0].n


@pytest.mark.parametrize("learned", [False, True], ids=["n_mode-native", "native-n-learned"])
def test_a_native_n_call_is_reserved_with_its_prompt_once(rm, learned):
    """With exact counts (a tokenizer; 102 prompt tokens), 102 + 4 x 200 fits a budget of 950:
    all four samples are drawn in one n=4 call at their full max_tokens (a prompt reserved per
    sample, 4 x 102 + 4 x 200, did not fit, and cut every sample's max_tokens)."""
    settings = {"tokenize_url": chat_tokenizer(rm)}
    if not learned:
        settings["n_mode"] = "native"
    with FaultUpstream() as up, ServerThread(serve_cfg(up, **settings)) as srv:
        if learned:  # one native n call succeeded before: the backend knows n works natively
            ask(srv, "sc4")
            up.log.clear()
        out = ask(srv, "sc4", 950)
        [gen] = up.log
        assert gen.n == 4 and gen.prompt_tokens + 4 * 200 <= 950 < 4 * (gen.prompt_tokens + 200)
        assert up.generated() <= 950
    assert out.choices[0].finish_reason == "stop"
    assert out.model_extra["ponder"]["budget_limited"] is False


@pytest.mark.parametrize("native", [False, True], ids=["fresh-upstream", "native-n-known"])
def test_examples_sc4_answers_a_300_word_question_with_budget_4000(native):
    """Done-when of issue 29: examples/serve.yaml's sc4 (k=4, max_tokens 300, budget 4000)
    answers a 300-word question, the prompt at its safe bound (no tokenizer). Where native n is
    known it draws all four samples."""
    settings = {"n_mode": "native"} if native else {}
    with FaultUpstream(tokenize=False) as up, ServerThread(serve_cfg(up, **settings)) as srv:
        out = ask(srv, "sc4-4000", messages=[{"role": "user", "content": QUESTION_300_WORDS}])
        assert up.generated() <= 4000
        drawn = sum(g.n for g in up.log)
    assert len(QUESTION_300_WORDS.split()) >= 300
    assert out.model_extra["ponder"]["answers"][0] is not None
    assert "\\boxed{" in (out.choices[0].message.content or "")
    if native:
        assert drawn == 4 and out.choices[0].finish_reason == "stop"


def test_a_failed_attempt_leaves_room_for_a_retry_of_fewer_samples():
    """The first attempt generates and drops the connection: it is charged its whole
    reservation (the upstream may have billed it), and the retry runs the samples that still fit
    instead of failing the request."""
    with (
        FaultUpstream(Faults(words=(20, 20))) as up,
        ServerThread(serve_cfg(up, n_mode="native")) as srv,
    ):
        draws = iter(["drop:20:4", "ok:20:4", "ok:20:4"])
        up.draw = lambda: next(draws)  # type: ignore[method-assign]
        out = ask(srv, "sc4", 1600)
        assert [g.fault for g in up.log] == ["drop", "ok"]
        assert up.generated() <= 1600
        assert up.log[1].n < up.log[0].n == 4
    assert out.model_extra["ponder"]["answers"] == ["4"]


def test_a_stream_whose_budget_cannot_fit_one_call_ends_with_budget_too_small():
    with FaultUpstream() as up, ServerThread(serve_cfg(up)) as srv:
        stream = ask(srv, "cot", 10, stream=True)
        with pytest.raises(openai.APIError) as e:
            for _ in stream:
                pass
        assert up.log == []
    assert isinstance(e.value.body, dict) and e.value.body["code"] == "budget_too_small"
    assert "needs at least" in e.value.message
