"""Rejection-sampling targets for SSA training: sample the aggregator, keep what reached gold.

Use it through ``ponder ssa rft`` (``ponder.learning.ssa.rft_run``), which drives one
``RFTSampler`` per SSA example through a ``Session``. This module is the sans-I/O part:

- ``RFTSampler``, a strategy (not registered: it carries one example's prompt) that asks the
  aggregator role for ``n`` samples of the example's exact inference prompt in one ``Generate``
  (budget, retries, fan-out of ``n``, usage and traces are the orchestrator's);
- ``select_targets``, which grades the samples against the gold answer (``extract_answer`` +
  ``is_equivalent``, as the collector grades), keeps the correct ones (identical texts once,
  at most ``cap``), and, only when no sample is right, may build one target from a correct
  *candidate* (``fallback="candidate"``): the candidates that agree on the right answer are
  named, and one of them's reasoning is followed to ``\\boxed{answer}`` (template
  ``ssa_rft_candidate_target``). Candidates are read back from the prompt
  (``parse_candidates``), so no collection is needed; a candidate whose reasoning was truncated
  for the prompt is never used as a target (it would teach the truncation mark).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from ponder.aggregator.candidates import TRUNCATION_MARK
from ponder.answers import extract_answer
from ponder.grading import is_equivalent
from ponder.prompts import load_template
from ponder.protocol.actions import Flow, Generate, Outcome, Task
from ponder.protocol.requests import Completion, GenerationRequest, SamplingParams
from ponder.protocol.strategy import Strategy

Fallback = Literal["candidate", "none"]
FALLBACKS: tuple[Fallback, ...] = ("candidate", "none")
TARGET_TEMPLATE = "ssa_rft_candidate_target"
TARGET_VARIABLES = {"numbers", "chosen", "answer", "reasoning"}

_CANDIDATE = re.compile(
    r"=== Candidate (\d+) ===\n(.*?)\nFinal answer of candidate \1: (.*?)\n"
    r"=== End of candidate \1 ===",
    re.DOTALL,
)


class RFTSampler(Strategy):
    """``params.n`` aggregator samples of one SSA prompt (``messages`` as the ``ssa`` aggregator
    sends them, ``params`` as ``RFTSettings.sampler`` sets them); returns an ``Outcome`` whose
    ``samples`` are the choices (answer extracted), or one with ``error`` set when the call failed
    after the session's retries."""

    name: ClassVar[str] = "ssa_rft_sample"

    messages: tuple[dict[str, Any], ...]
    params: SamplingParams
    role: str = "aggregator"

    def roles(self) -> set[str]:
        return {self.role}

    def flow(self, task: Task) -> Flow:
        req = GenerationRequest(
            messages=self.messages, params=self.params, role=self.role, purpose="aggregate"
        )
        [result] = yield Generate.of(req)
        if not isinstance(result, Completion):
            return Outcome(
                answer=None,
                text="",
                error=result.error,
                data={"error": f"{type(result.error).__name__}: {result.error}"},
            )
        samples = [
            Outcome(
                answer=extract_answer(c.text),
                text=c.text,
                data={"tokens": c.completion_tokens, "finish_reason": c.finish_reason},
            )
            for c in result.choices
        ]
        return Outcome(answer=None, text="", samples=samples)


@dataclass(frozen=True)
class ShownCandidate:
    """One candidate as the aggregator saw it in the prompt (numbered from 1)."""

    number: int
    reasoning: str
    answer: str

    @property
    def truncated(self) -> bool:
        return TRUNCATION_MARK.strip() in self.reasoning


def parse_candidates(user_prompt: str) -> list[ShownCandidate]:
    """The candidates rendered into an ``ssa_user`` prompt, in order."""
    return [
        ShownCandidate(int(m.group(1)), m.group(2), m.group(3))
        for m in _CANDIDATE.finditer(user_prompt)
    ]


@dataclass(frozen=True)
class Target:
    """One training target: the assistant text, its answer, and where it came from."""

    text: str
    answer: str | None
    source: Literal["aggregator", "candidate"]
    tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "answer": self.answer,
            "source": self.source,
            "tokens": self.tokens,
        }


@dataclass
class Selection:
    """What ``select_targets`` made of one example's samples."""

    targets: list[Target] = field(default_factory=list)
    graded: list[dict[str, Any]] = field(default_factory=list)
    """Per sample: text, answer, correct, tokens, finish_reason (kept for analysis and GRPO)."""

    @property
    def correct_samples(self) -> int:
        return sum(bool(g["correct"]) for g in self.graded)


def candidate_target(user_prompt: str, gold: str) -> Target | None:
    """A target built from the candidates that reached ``gold`` (``None`` if none did, or if
    every correct one was truncated in the prompt)."""
    right = [c for c in parse_candidates(user_prompt) if is_equivalent(c.answer, gold)]
    usable = [c for c in right if not c.truncated]
    if not usable:
        return None
    chosen = usable[0]
    text = load_template(TARGET_TEMPLATE, allowed=TARGET_VARIABLES).render(
        numbers=[c.number for c in right],
        chosen=chosen.number,
        answer=chosen.answer,
        reasoning=chosen.reasoning.strip(),
    )
    return Target(text=text, answer=extract_answer(text), source="candidate")


def select_targets(
    samples: list[Outcome],
    gold: str,
    user_prompt: str,
    *,
    cap: int = 2,
    fallback: Fallback = "candidate",
) -> Selection:
    """Grade ``samples``, keep up to ``cap`` distinct correct texts; see the module doc."""
    sel = Selection()
    seen: set[str] = set()
    for s in samples:
        correct = is_equivalent(s.answer, gold)
        tokens = int(s.data.get("tokens") or 0)
        sel.graded.append(
            {
                "text": s.text,
                "answer": s.answer,
                "correct": correct,
                "tokens": tokens,
                "finish_reason": s.data.get("finish_reason"),
            }
        )
        key = s.text.strip()
        if correct and key not in seen and len(sel.targets) < cap:
            seen.add(key)
            sel.targets.append(Target(s.text.strip(), s.answer, "aggregator", tokens))
    if not sel.targets and fallback == "candidate":
        made = candidate_target(user_prompt, gold)
        if made is not None:
            sel.targets.append(made)
    return sel
