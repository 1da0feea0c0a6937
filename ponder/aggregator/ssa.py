"""SSA, the Sample Set Aggregator: a compact model reads k candidates and writes one answer.

The candidates are rendered into one prompt (template ``ssa_user``: the question, each candidate
numbered and delimited, then the instruction to reason across them and give a final answer in
``\\boxed{}``) and sent with ``role="aggregator"``, so the aggregator may be a different backend
from the sampler (``roles: {aggregator: ...}`` in the chain config). Long sets are handled on
purpose: each candidate's reasoning is truncated to ``max_candidate_tokens`` with its final answer
kept, and at most ``max_candidates`` are shown (the SSA paper reports degradation past ~20).
If the aggregator fails or states no answer, majority vote decides, and the trace says so. An
output cut at ``max_tokens`` counts only if it already boxed an answer: the last number of
unfinished reasoning is not a final answer (a larger aggregator that reasons at length is cut
often; measured in docs/aggregation.md).

With ``judge_scores: true`` each candidate is shown with its judge's P(correct) (the sample's
``data["p_correct"]`` or ``data["p"]``: ``drr_sample``/``drr_bayes`` traces carry the DM's),
as a line after its final answer; off by default, the prompt is byte-identical to before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from ponder.aggregator.base import Aggregator
from ponder.aggregator.candidates import candidate_views
from ponder.aggregator.judge_weighted import sample_p
from ponder.aggregator.registry import register_aggregator
from ponder.aggregator.voting import Majority
from ponder.answers import extract_answer, last_boxed
from ponder.prompts import load_template
from ponder.protocol.actions import Flow, Generate, Note, Outcome, Task
from ponder.protocol.requests import Completion, GenerationRequest, SamplingParams

SSA_VARIABLES = {"question", "candidates"}


@register_aggregator
class SSA(Aggregator):
    """Aggregate by asking a (small) model to reason across the candidate set."""

    name: ClassVar[str] = "ssa"

    max_candidates: int = Field(16, ge=1, le=64)
    max_candidate_tokens: int = Field(384, ge=0)
    max_tokens: int = Field(512, gt=0)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int | None = None
    role: str = "aggregator"
    system_template: str = "cot_system"
    user_template: str = "ssa_user"
    judge_scores: bool = False

    @model_validator(mode="after")
    def _templates_valid(self) -> SSA:
        load_template(self.system_template, allowed=())
        load_template(self.user_template, allowed=SSA_VARIABLES)
        return self

    def roles(self) -> set[str]:
        return {self.role}

    def request(
        self, task: Task, samples: Sequence[Outcome]
    ) -> tuple[GenerationRequest, list[int]]:
        scores = [sample_p(s) for s in samples] if self.judge_scores else None
        views = candidate_views(samples, self.max_candidates, self.max_candidate_tokens, scores)
        user = load_template(self.user_template, allowed=SSA_VARIABLES).render(
            question=task.question, candidates=views
        )
        system = load_template(self.system_template, allowed=()).render()
        req = GenerationRequest(
            messages=({"role": "system", "content": system}, {"role": "user", "content": user}),
            params=SamplingParams(
                temperature=self.temperature, max_tokens=self.max_tokens, seed=self.seed
            ),
            role=self.role,
            purpose="aggregate",
        )
        return req, [v.index for v in views]

    def flow(self, task: Task, samples: Sequence[Outcome]) -> Flow:
        answered = sum(s.answer is not None for s in samples)
        if answered == 0:
            return Majority().choose(task, samples)  # raises AllSamplesFailed with the causes
        req, shown = self.request(task, samples)
        if answered > len(shown):
            yield Note("ssa_candidates_capped", {"shown": len(shown), "answered": answered})
        [result] = yield Generate.of(req)
        vote = Majority().choose(task, samples)
        if isinstance(result, Completion):
            choice = result.choices[0]
            text = choice.text
            cut = choice.finish_reason == "length"
            answer = last_boxed(text) if cut else extract_answer(text)
            if answer is not None:
                return Outcome(
                    answer=answer,
                    text=text,
                    data={"aggregator": self.name, "shown": shown, "majority": vote.answer},
                )
            why = (
                f"the aggregator was cut at max_tokens={self.max_tokens} before a final answer"
                if cut
                else "the aggregator stated no final answer"
            )
        else:
            why = f"the aggregator call failed: {type(result.error).__name__}: {result.error}"
        yield Note("ssa_fallback", {"why": why, "answer": vote.answer})
        vote.data.update({"aggregator": self.name, "fallback": f"majority ({why})"})
        return vote
