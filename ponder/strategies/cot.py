"""Plain chain-of-thought: one call, answer extracted from the reasoning.

The simplest strategy and the inner building block of the parallel ones. Use it as the greedy
baseline (``temperature=0``) or, with temperature > 0, as the sampler of self-consistency.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from ponder.answers import extract_answer
from ponder.orchestrator.requests import (
    Completion,
    GenerationRequest,
    Message,
    SamplingParams,
)
from ponder.prompts import load_template
from ponder.strategies.base import Flow, Generate, Outcome, Strategy, Task
from ponder.strategies.registry import register_strategy

PROMPT_VARIABLES = {"question"}


def cot_messages(task: Task, system_template: str, user_template: str) -> tuple[Message, ...]:
    system = task.system or load_template(system_template, allowed=()).render()
    user = load_template(user_template, allowed=PROMPT_VARIABLES).render(question=task.question)
    return ({"role": "system", "content": system}, {"role": "user", "content": user})


@register_strategy
class ChainOfThought(Strategy):
    """Reason step by step in one call and extract the final answer."""

    name: ClassVar[str] = "cot"

    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(512, gt=0)
    seed: int | None = None
    logprobs: bool = False
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
            ),
            purpose="reason",
        )

    def flow(self, task: Task) -> Flow:
        [result] = yield Generate.of(self.request(task))
        if not isinstance(result, Completion):
            if not result.budget:
                raise result.error
            return Outcome(
                answer=None,
                text="",
                budget_limited=result.budget,
                data={"error": f"{type(result.error).__name__}: {result.error}"},
            )
        choice = result.choices[0]
        return Outcome(
            answer=extract_answer(choice.text),
            text=choice.text,
            confidence=choice.mean_logprob,
            data={"finish_reason": choice.finish_reason, "tokens": choice.completion_tokens},
        )
