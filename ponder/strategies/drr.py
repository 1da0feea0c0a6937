"""DRR at inference: live sans-I/O strategies driven by a trained DM.

Use them like any strategy (chain files name them; ``dm`` is an artifact path or ``"default"``)::

    strategy: {name: drr_think, dm: ~/.cache/ponder/dm/qwen05.json, threshold: 0.8}
    strategy: {name: drr_sample, dm: default, k: 8, threshold: 0.8}
    strategy: {name: drr_feedback, dm: default, judge: dm, threshold: 0.5, rounds: 2}

- ``drr_think`` (stop thinking): reason in segments of ``probe_every`` tokens; after each
  unfinished segment probe for the current answer (the collector's cue), score the state with the
  DM and stop, answering with the probe's answer, once P(correct) >= ``threshold``. With
  ``stop: dynasor`` it stops instead once the last ``agree`` probe answers agree (Dynasor-CoT; no
  DM). With ``thinking`` (a backend serving the thinking format) the trace is the thinking
  collector's: segments and probes inside the thinking, capped at ``max_tokens``, a stopped
  thinking closed and answered (``ponder.strategies.drr_thinking``); the DM must come from a
  thinking collection with the same settings, and a plain DM or backend is refused.
- ``drr_sample`` (stop sampling): draw traces in rounds of ``round_size``; after each round stop
  when the DM says the current majority is right with P >= ``threshold``. With ``probes: false``
  each round is one plain request (``sample``'s), judged at each trace's end by a probe-free DM
  (``ponder.strategies.drr_oneshot``): no segments, no probes.
- ``drr_feedback`` (the DRR paper's own use): when the reasoner has finished and its judge
  (``dm`` or ``self_critique``) scores the answer under ``threshold``, send it back to re-examine
  its solution, up to ``rounds`` times. A re-examination that fails (a call, or the budget)
  loses nothing: the best finished answer so far is returned, marked (``data["failed_round"]``,
  ``data["error"]``; ``budget_limited`` when the budget cut it).

Every one puts its P(correct) on ``Outcome.confidence`` (so on ``RunResult.confidence``) and, with
``abstain_below``, withholds an answer whose confidence is under it (``answer=None``,
``data["abstained"] = True``, the withheld answer in ``data["withheld_answer"]``). A trace is the
collector's (``ponder.learning.collect.strategy``): both drive the one probed-trace loop
(``ProbedTraceFields.probed_trace``), the DM judging each checkpoint here, so with the same seed a
live run makes the decisions a replay of its collection predicts.

This module defines ``drr_think`` and ``drr_sample``; ``drr_feedback`` is defined in
``ponder.strategies.drr_feedback`` and their shared base (``ProbedReasoner``, ``withhold``) in
``ponder.strategies.drr_reasoner``. All of them can still be imported from here.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from ponder.aggregator.registry import AggregatorField
from ponder.errors import ConfigError
from ponder.protocol.actions import Flow, Fork, Note, Outcome, Task
from ponder.protocol.strategy import Requirement
from ponder.stopping.features import majority
from ponder.stopping.model import DM
from ponder.strategies.cot import cot_messages
from ponder.strategies.drr_feedback import Feedback
from ponder.strategies.drr_oneshot import one_call_samples
from ponder.strategies.drr_reasoner import ProbedReasoner, trace_summary, withhold
from ponder.strategies.probed_trace import TraceLog
from ponder.strategies.registry import register_strategy
from ponder.strategies.sampling import ensure_some_answer
from ponder.strategies.thinking_trace import ThinkingSettings


@register_strategy
class StopThinking(ProbedReasoner):
    """Stop one trace at the first checkpoint where the DM's P(correct) >= ``threshold``."""

    name: ClassVar[str] = "drr_think"

    threshold: float = Field(0.8, ge=0.0, le=1.0)
    stop: Literal["dm", "dynasor"] = "dm"
    """``dynasor``: stop once the last ``agree`` probe answers agree (Dynasor-CoT; replay's
    ``dynasor@m``), no DM read (``dm``, ``threshold`` unused)."""
    agree: int = Field(3, ge=1)
    thinking: ThinkingSettings | None = None
    """Reason in the thinking format (a backend with ``thinking: true``), as ``ponder collect
    --thinking-budget N`` recorded the DM's collection: segments and probes inside the thinking,
    ``max_tokens`` the thinking's cap (the collection's), on a stop the thinking closed and the
    answer written within ``answer_tokens`` (``ponder.strategies.drr_thinking``)."""
    stop_answer: Literal["probe", "forced"] = "probe"
    """Thinking format, a thinking stopped early: answer with the probe's answer (what replay
    grades) or the answer part's (``forced``; the probe's when it has none)."""

    @model_validator(mode="after")
    def _one_stop(self) -> StopThinking:
        if self.stop == "dynasor" and self.abstain_below is not None:
            raise ConfigError("abstain_below", "stop: dynasor has no P(correct) to abstain on")
        if self.stop_answer == "forced" and self.thinking is None:
            raise ConfigError("stop_answer", "forced answers after a closed thinking: set thinking")
        return self

    def dm_needed(self) -> bool:
        return self.stop == "dm"

    def thinking_format(self) -> ThinkingSettings | None:
        return self.thinking

    def dynasor_agree(self) -> int | None:
        return self.agree if self.stop == "dynasor" else None

    def answer_from_probe(self) -> bool:
        return self.stop_answer == "probe"

    def check_backend(self, thinking_template: str | None) -> None:
        """The thinking format needs a backend serving it with the same think-first template,
        and a backend serving it needs the thinking format."""
        mine = None if self.thinking is None else self.thinking.template
        if mine == thinking_template:
            return
        if mine is None:
            why = "the backend serves the thinking format (thinking: true) and drr_think reasons "
            why += "in plain traces: set thinking: {} (and a DM trained on a thinking collection)"
        elif thinking_template is None:
            why = "thinking-format traces need a backend serving the thinking format "
            why += "(backend: {kind: local, thinking: true}), or unset thinking"
        else:
            why = f"the backend's thinking_template is {thinking_template} and drr_think's "
            why += f"thinking.template is {mine} (the DM's collection's): make them the same"
        raise ConfigError("strategy.thinking", why)

    def flow(self, task: Task) -> Flow:
        messages = cot_messages(task, self.system_template, self.user_template)
        out = yield from self.trace(messages, self.seed, self.threshold)
        if out.error is not None and out.answer is None:
            raise out.error  # as ``cot``: a failed call (not the budget) fails the run
        log: TraceLog = out.data.pop("trace")
        out.data.update(trace_summary(log))
        return withhold(out, out.data.get("p"), self.abstain_below)


@register_strategy
class StopSampling(ProbedReasoner):
    """Draw traces in rounds; stop once the DM's P(majority right) >= ``threshold``."""

    name: ClassVar[str] = "drr_sample"

    k: int = Field(8, ge=1, le=64)
    threshold: float = Field(0.8, ge=0.0, le=1.0)
    round_size: int = Field(1, ge=1)
    think_threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Also stop each trace early (``drr_think``'s rule) when set; replay covers it unset."""
    aggregator: AggregatorField | None = None
    """How the drawn samples are combined; unset: majority (what the stop rule scores). Each
    sample carries its DM P(correct) as ``data["p"]``, so ``judge_weighted`` can weigh votes."""
    probes: bool = True
    """``false``: each round is ONE request for ``round_size`` samples, as ``sample`` over
    ``cot`` sends it (no segments, no probes: the prompt cache and parallel slots work, no
    continuation needed), each sample judged at its end by a probe-free DM
    (``ponder drr train --no-probes``; ``ponder.strategies.drr_oneshot``)."""

    give_up_below: float | None = Field(None, ge=0.0, le=1.0)
    """Also stop (a futility stop) once P(majority right) < this after ``give_up_after``
    samples: a question the reasoner is not getting right is not worth 8 samples; the answer is
    the majority so far, and ``data["gave_up"]`` says so. Unset: never."""
    give_up_after: int = Field(2, ge=1)

    @model_validator(mode="after")
    def _probes_for_think(self) -> StopSampling:
        if not self.probes and self.think_threshold is not None:
            raise ConfigError(
                "think_threshold", "stopping a trace early needs its probes: unset it or probes"
            )
        if self.give_up_below is not None and not self.calibrated:
            raise ConfigError(
                "give_up_below",
                f"{self.name}'s stop score is not a calibrated P(majority right); use drr_sample",
            )
        return self

    def gives_up(self, p: float, drawn: int) -> bool:
        """The futility stop: P(majority right) under ``give_up_below`` after enough samples."""
        return (
            self.give_up_below is not None
            and drawn >= self.give_up_after
            and (p < self.give_up_below)
        )

    def uses_probes(self) -> bool:
        return self.probes

    def requires(self) -> tuple[Requirement, ...]:
        return super().requires() if self.probes else ()

    def stop_score(self, dm: DM, answers: list[str | None], scores: list[float]) -> float:
        """The score compared with ``threshold`` after a round: the DM's P(majority right)."""
        return dm.p_majority(answers, scores)

    def may_stop(self, drawn: int) -> bool:
        """Whether sampling may stop after ``drawn`` samples (always, here)."""
        return True

    def flow(self, task: Task) -> Flow:
        dm = self.judge_model()
        messages = cot_messages(task, self.system_template, self.user_template)
        samples: list[Outcome] = []
        answers: list[str | None] = []
        scores: list[float] = []
        p = 0.0
        gave_up = False
        while len(samples) < self.k:
            n = min(self.round_size, self.k - len(samples))
            seeds = [self.seed + len(samples) + i for i in range(n)]
            results: list[Any]
            if self.probes:
                flows = [self.trace(messages, s, self.think_threshold) for s in seeds]
                results = yield Fork(flows, label="drr_sample")
            else:
                results = yield from one_call_samples(self.one_call(), task, seeds, dm)
            for r in results:
                o = r if isinstance(r, Outcome) else Outcome(answer=None, text="", error=r)
                log = o.data.pop("trace", None)
                if log is not None:
                    o.data.update(trace_summary(log))
                samples.append(o)
                answers.append(o.answer)
                scores.append(o.data.get("p") or 0.0)
            p = self.stop_score(dm, answers, scores)
            gave_up = self.gives_up(p, len(samples)) and len(samples) < self.k
            stop = (p >= self.threshold and self.may_stop(len(samples))) or gave_up
            note = {"drawn": len(samples), self.score_name: round(p, 4), "stop": stop}
            yield Note("drr_round", {**note, **({"gave_up": True} if gave_up else {})})
            if stop:
                break
        empty = ensure_some_answer(samples)
        if empty is not None:
            return empty
        if self.aggregator is not None:
            out = yield from self.aggregator.flow(task, samples)
            out.samples = samples
            out.budget_limited = out.budget_limited or any(s.budget_limited for s in samples)
            out.data.update(
                {
                    "drawn": len(samples),
                    self.score_name: p,
                    **({"gave_up": True} if gave_up else {}),
                }
            )
            return withhold(out, p, self.abstain_below, calibrated=self.calibrated)
        answer = self.pick(answers, scores)
        rep = next((s for s in samples if s.answer == answer), samples[0])
        out = Outcome(
            answer=answer,
            text=rep.text,
            samples=samples,
            budget_limited=any(s.budget_limited for s in samples),
            data={
                "drawn": len(samples),
                self.score_name: p,
                **({"gave_up": True} if gave_up else {}),
            },
        )
        return withhold(out, p, self.abstain_below, calibrated=self.calibrated)

    score_name: ClassVar[str] = "p_majority"
    calibrated: ClassVar[bool] = True
    """Whether the stop score is a calibrated P(correct) (then it is the run's ``p_correct``)."""

    def pick(self, answers: list[str | None], scores: list[float]) -> str | None:
        """The answer of the drawn samples (without an ``aggregator``): the majority."""
        return majority(answers)


__all__ = ["Feedback", "ProbedReasoner", "StopSampling", "StopThinking", "withhold"]
