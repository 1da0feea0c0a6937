"""LLM-select: the model reads the numbered candidates and picks one by its number.

A cheap baseline beside SSA: the reply must contain ``\\boxed{N}`` (or end with a number); the
chosen candidate's answer is returned unchanged. Invalid picks fall back to majority vote.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from ponder.aggregator.base import Aggregator
from ponder.aggregator.candidates import candidate_views
from ponder.aggregator.registry import register_aggregator
from ponder.aggregator.voting import Majority
from ponder.answers import last_boxed
from ponder.prompts import load_template
from ponder.protocol.actions import Flow, Generate, Note, Outcome, Task
from ponder.protocol.requests import Completion, GenerationRequest, SamplingParams

SELECT_VARIABLES = {"question", "candidates"}
_INT = re.compile(r"\d+")


def parse_pick(text: str, count: int) -> int | None:
    """The 1-based candidate number in ``text`` (boxed first, else the last integer), if valid."""
    boxed = last_boxed(text)
    nums = _INT.findall(boxed) if boxed else _INT.findall(text)
    if not nums:
        return None
    n = int(nums[-1] if not boxed else nums[0])
    return n if 1 <= n <= count else None


@register_aggregator
class LLMSelect(Aggregator):
    """Ask a model which numbered candidate is right."""

    name: ClassVar[str] = "llm_select"

    max_candidates: int = Field(16, ge=1, le=64)
    max_candidate_tokens: int = Field(256, ge=0)
    max_tokens: int = Field(256, gt=0)
    role: str = "aggregator"
    user_template: str = "llm_select_user"

    @model_validator(mode="after")
    def _templates_valid(self) -> LLMSelect:
        load_template(self.user_template, allowed=SELECT_VARIABLES)
        return self

    def roles(self) -> set[str]:
        return {self.role}

    def flow(self, task: Task, samples: Sequence[Outcome]) -> Flow:
        vote = Majority().choose(task, samples)  # also raises when no sample has an answer
        views = candidate_views(samples, self.max_candidates, self.max_candidate_tokens)
        user = load_template(self.user_template, allowed=SELECT_VARIABLES).render(
            question=task.question, candidates=views
        )
        req = GenerationRequest(
            messages=({"role": "user", "content": user},),
            params=SamplingParams(temperature=0.0, max_tokens=self.max_tokens),
            role=self.role,
            purpose="select",
        )
        [result] = yield Generate.of(req)
        pick = parse_pick(result.text, len(views)) if isinstance(result, Completion) else None
        if pick is None:
            yield Note(
                "llm_select_fallback", {"why": "no valid candidate number", "answer": vote.answer}
            )
            vote.data.update({"aggregator": self.name, "fallback": "majority (no valid pick)"})
            return vote
        chosen = samples[views[pick - 1].index]
        return Outcome(
            answer=chosen.answer,
            text=chosen.text,
            data={"aggregator": self.name, "chosen": views[pick - 1].index, "pick": pick},
        )
