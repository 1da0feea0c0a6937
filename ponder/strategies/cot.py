"""Plain chain-of-thought: one call, answer extracted from the reasoning.

The simplest strategy and the inner building block of the parallel ones. Use it as the greedy
baseline (``temperature=0``) or, with temperature > 0, as the sampler of self-consistency.

With ``logprobs: true`` every outcome carries its DeepConf trace confidence
(``data["trace_confidence"]``: mean, lowest_group, bottom10, tail; ``data["confidence_source"]``
says whether it came from the top ``top_logprobs`` alternatives or only the chosen tokens), and a
``trace_confidence`` decision records it in the trace. A backend that returns no logprobs then
fails the run with ``CapabilityMissing`` naming the capability, instead of voting on nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from ponder.answers import extract_answer
from ponder.confidence import choice_confidences, trace_confidence
from ponder.errors import CapabilityMissing, ToolNotOffered
from ponder.prompts import load_template
from ponder.protocol.actions import Flow, Generate, Note, Outcome, Task
from ponder.protocol.requests import (
    Choice,
    Completion,
    GenerationRequest,
    Message,
    SamplingParams,
)
from ponder.protocol.strategy import SingleCall, Strategy
from ponder.protocol.tool_calls import (
    call_name,
    normalized_calls,
    offered_names,
    tool_call_answer,
)
from ponder.strategies.registry import register_strategy

PROMPT_VARIABLES = {"question"}
RESTART_VARIABLES = {"question", "summary"}
"""What a restart template (a fresh start from a summary of the work so far) may use."""


def system_prompt(task: Task, system_template: str) -> str:
    """The task's own system prompt, else ``system_template`` rendered."""
    return task.system or load_template(system_template, allowed=()).render()


def cot_messages(task: Task, system_template: str, user_template: str) -> tuple[Message, ...]:
    system = system_prompt(task, system_template)
    if task.messages is not None:  # an agent's turn: the transcript as the client sent it
        return ({"role": "system", "content": system}, *task.messages)
    user = load_template(user_template, allowed=PROMPT_VARIABLES).render(question=task.question)
    return ({"role": "system", "content": system}, {"role": "user", "content": user})


def restart_messages(
    task: Task, system_template: str, restart_template: str, summary: str
) -> tuple[Message, Message]:
    """A fresh start from ``summary`` (``summarize``, ``tool_loop``): the system prompt, then
    ``restart_template`` rendered with the question and the summary."""
    system = system_prompt(task, system_template)
    user = load_template(restart_template, allowed=RESTART_VARIABLES).render(
        question=task.question, summary=summary
    )
    return ({"role": "system", "content": system}, {"role": "user", "content": user})


def confidence_data(choice: Choice, params: SamplingParams, model: str = "") -> dict[str, object]:
    """``trace_confidence`` + ``confidence_source`` of a choice that was asked for logprobs
    (empty when it was not); raises ``CapabilityMissing`` when the backend returned none."""
    if not params.logprobs:
        return {}
    conf, source = choice_confidences(choice.token_logprobs, choice.top_logprobs)
    if source is None:
        if choice.completion_tokens == 0:
            return {}
        served = f" (model {model!r})" if model else ""
        raise CapabilityMissing(
            f"the backend{served} lacks capability 'logprobs' (per-token log-probabilities): "
            "it returned none for a request with logprobs: true, which trace confidence, "
            "weighted and confidence_filter voting and deepconf need; use a backend that returns "
            "them (llama.cpp's server, vLLM, OpenAI) or set logprobs: false"
        )
    return {
        "trace_confidence": trace_confidence(conf).to_dict(),
        "confidence_source": source,
    }


def choice_outcome(
    choice: Choice,
    params: SamplingParams,
    seed: int | None = None,
    model: str = "",
    tools: tuple[dict[str, Any], ...] | None = None,
) -> Outcome:
    """The outcome of one generated chain of thought (answer, mean logprob, confidence).

    With ``tools`` (the request offered them; ``()`` for a transcript with tool turns and none
    offered) the turn may be tool calls: its answer is then their vote identity
    (``tool_call_answer``) and ``data["tool_calls"]`` the calls, normalized; a call to a tool not
    offered casts no vote (``ToolNotOffered``). A final text answer of an agent's turn is its
    extracted answer, else its whole text, so a conversational reply still votes. A reasoning
    model's thinking (``choice.reasoning``) is kept in ``data["reasoning"]`` (and its tokens in
    ``data["reasoning_tokens"]``); the answer comes from ``choice.text`` only."""
    data: dict[str, object] = {
        "finish_reason": choice.finish_reason,
        "tokens": choice.completion_tokens,
    }
    if seed is not None:
        data = {"seed": seed, **data}
    if choice.reasoning is not None:  # a reasoning model's thinking: kept, never graded
        data["reasoning"] = choice.reasoning
    if choice.reasoning_tokens:
        data["reasoning_tokens"] = choice.reasoning_tokens
    if choice.thinking_bound is not None:  # a thinking budget held it: how, and was it cut
        data["thinking_bound"] = choice.thinking_bound
        data["thinking_cut"] = choice.thinking_cut
    data.update(confidence_data(choice, params, model))
    answer = extract_answer(choice.text)
    error: BaseException | None = None
    if tools is not None and choice.tool_calls:
        offered = offered_names(tools)
        stray = [call_name(c) for c in choice.tool_calls if call_name(c) not in offered]
        data["finish_reason"] = "tool_calls"
        if choice.tool_calls_from_text:
            data["tool_calls_from_text"] = True
        if stray:
            error = ToolNotOffered(stray[0], offered)
            data["error"] = str(error)
            answer = None
        else:
            data["tool_calls"] = normalized_calls(choice.tool_calls)
            answer = tool_call_answer(choice.tool_calls)
    elif tools is not None and answer is None:
        answer = " ".join(choice.text.split()) or None
    return Outcome(
        answer=answer,
        text=choice.text,
        confidence=choice.mean_logprob,
        data=data,
        error=error,
    )


@register_strategy
class ChainOfThought(Strategy, SingleCall):
    """Reason step by step in one call and extract the final answer."""

    name: ClassVar[str] = "cot"

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, gt=0)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = Field(5, ge=0, le=20)
    """With ``logprobs``: alternatives per token for DeepConf token confidence (0: chosen only)."""
    system_template: str = "cot_system"
    user_template: str = "cot_user"

    @model_validator(mode="after")
    def _templates_valid(self) -> ChainOfThought:
        load_template(self.system_template, allowed=())
        load_template(self.user_template, allowed=PROMPT_VARIABLES)
        return self

    def request(self, task: Task) -> GenerationRequest:
        return GenerationRequest(
            messages=cot_messages(task, self.system_template, self.user_template),
            params=SamplingParams(
                temperature=self.temperature,
                top_p=self.top_p,
                max_tokens=self.max_tokens,
                seed=self.seed,
                logprobs=self.logprobs,
                top_logprobs=self.top_logprobs if self.logprobs else 0,
            ),
            purpose="reason",
            tools=task.tools,
            tool_choice=task.tool_choice if task.tools else None,
        )

    def tools_unsupported(self) -> str | None:
        return None

    def flow(self, task: Task) -> Flow:
        req = self.request(task)
        [result] = yield Generate.of(req)
        if not isinstance(result, Completion):
            if not result.budget:
                raise result.error
            return Outcome(
                answer=None,
                text="",
                budget_limited=result.budget,
                data={"error": f"{type(result.error).__name__}: {result.error}"},
            )
        out = choice_outcome(result.choices[0], req.params, model=result.model, tools=req.tools)
        if "trace_confidence" in out.data:
            yield Note(
                "trace_confidence",
                {"source": out.data["confidence_source"], **out.data["trace_confidence"]},
            )
        return out
