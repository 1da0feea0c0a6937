"""``drr_feedback``: the DRR paper's own use of its judge -- send a low-scored answer back.

Use it where a finished answer may be worth a second look: when the reasoner has finished and its
judge (``judge: dm``, the trained DM's P(correct), or ``judge: self_critique``, the model's own
yes/no) scores the answer under ``threshold``, the solution is sent back to be re-examined
(``reexamine_template``), up to ``rounds`` times::

    strategy: {name: drr_feedback, dm: default, judge: dm, threshold: 0.5, rounds: 2}

With a probe-free DM (``dm: probe-free, probes: false``) every round is ONE plain request judged
at its end (``ponder.strategies.drr_oneshot``): no 64-token segments, no answer probes, so no
re-sent prefixes and no continuation needed.

A re-examination that fails (a call, or the budget) loses nothing: the best finished answer so far
is returned, marked (``data["failed_round"]``, ``data["error"]``; ``budget_limited`` when the
budget cut it). The shared fields, the DM-judged trace and ``abstain_below`` are
``ponder.strategies.drr_reasoner``'s.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ponder.prompts import load_template
from ponder.protocol.actions import Flow, Note, Outcome, Task
from ponder.protocol.requests import Message
from ponder.protocol.requirements import Requirement
from ponder.strategies.cot import cot_messages
from ponder.strategies.drr_oneshot import one_call_trace
from ponder.strategies.drr_reasoner import ProbedReasoner, trace_summary, withhold
from ponder.strategies.probed_trace import TraceLog, critique_flow
from ponder.strategies.registry import register_strategy


@register_strategy
class Feedback(ProbedReasoner):
    """Send a finished answer back to be re-examined while its judge scores it low."""

    name: ClassVar[str] = "drr_feedback"

    judge: Literal["dm", "self_critique"] = "dm"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    rounds: int = Field(2, ge=0, le=8)
    reexamine_template: str = "drr_reexamine_user"
    critique_template: str = "self_critique_user"
    probes: bool = True
    """``false`` (``judge: dm`` with a probe-free DM): each round is one plain request judged at
    its end; ``true``: the probed trace the packaged ``default`` DM judges."""

    def dm_needed(self) -> bool:
        return self.judge == "dm"

    def uses_probes(self) -> bool:
        return self.probes

    def requires(self) -> tuple[Requirement, ...]:
        return () if self.plain_rounds() else super().requires()

    def plain_rounds(self) -> bool:
        """Whether each round is one plain request judged by a probe-free DM."""
        return self.judge == "dm" and not self.probes

    def _round(self, task: Task, messages: tuple[Message, ...]) -> Flow:
        if self.plain_rounds():
            req = replace(self.one_call().request(task), messages=messages)
            return (yield from one_call_trace(req, self.seed, self.judge_model()))
        return (yield from self.trace(messages, self.seed, None, probes=self.judge == "dm"))

    @model_validator(mode="after")
    def _feedback_templates(self) -> Feedback:
        load_template(self.reexamine_template, allowed=())
        load_template(self.critique_template, allowed=())
        return self

    def flow(self, task: Task) -> Flow:
        messages = cot_messages(task, self.system_template, self.user_template)
        history: list[dict[str, Any]] = []
        out = Outcome(answer=None, text="")
        score: float | None = None
        best: tuple[int, Outcome, float | None] | None = None  # the best finished round so far
        for r in range(self.rounds + 1):
            out = yield from self._round(task, messages)
            if best is not None and (out.error is not None or out.budget_limited):
                return (yield from self._kept(best, out, r, history))
            if out.error is not None and out.answer is None:
                raise out.error
            log: TraceLog | None = out.data.pop("trace", None)
            if self.judge == "dm":
                score = out.data.get("p")
            else:
                score = yield from self._critique(messages, out.text)
            cost = trace_summary(log) if log is not None else _one_call_summary(out)
            history.append({"round": r, "answer": out.answer, "score": score, **cost})
            again = score is not None and score < self.threshold and r < self.rounds
            yield Note(
                "drr_feedback", {"round": r, "answer": out.answer, "score": score, "again": again}
            )
            if not again or out.budget_limited:
                break
            if best is None or (score or 0.0) >= (best[2] or 0.0):
                best = (r, out, score)
            ask = load_template(self.reexamine_template, allowed=()).render()
            messages = (
                *messages,
                {"role": "assistant", "content": out.text},
                {"role": "user", "content": ask},
            )
        out.data.update({"judge": self.judge, "rounds": history})
        return withhold(out, score, self.abstain_below, calibrated=self.judge == "dm")

    def _kept(
        self,
        best: tuple[int, Outcome, float | None],
        failed: Outcome,
        r: int,
        history: list[dict[str, Any]],
    ) -> Generator[Any, Any, Outcome]:
        """A re-examination round failed (a call, or the budget): answer with the best finished
        round so far (the judge's highest score) instead of losing it, marked:
        ``budget_limited`` when the budget cut the round, ``data["error"]`` and
        ``data["failed_round"]`` either way, and a ``drr_feedback_failed`` note in the trace."""
        kept, out, score = best
        if failed.error is not None:
            why = f"{type(failed.error).__name__}: {failed.error}"
        else:
            why = str(failed.data.get("error") or "the token budget ran out")
        yield Note("drr_feedback_failed", {"round": r, "kept_round": kept, "why": why})
        history.append({"round": r, "answer": None, "score": None, "error": why})
        out.budget_limited = out.budget_limited or failed.budget_limited
        out.data.update({"judge": self.judge, "rounds": history, "error": why, "failed_round": r})
        return withhold(out, score, self.abstain_below, calibrated=self.judge == "dm")

    def _critique(
        self, messages: tuple[Message, ...], text: str
    ) -> Generator[Any, Any, float | None]:
        ask = load_template(self.critique_template, allowed=()).render()
        return (yield from critique_flow(messages, text, ask))


def _one_call_summary(out: Outcome) -> dict[str, Any]:
    """``trace_summary``'s fields for a one-call round."""
    return {"tokens": out.data.get("tokens", 0), "probes": 0, "usage": out.data.get("usage", {})}
