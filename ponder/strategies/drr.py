"""DRR at inference: live sans-I/O strategies driven by a trained DM.

Use them like any strategy (chain files name them; ``dm`` is an artifact path or ``"default"``)::

    strategy: {name: drr_think, dm: ~/.cache/ponder/dm/qwen05.json, threshold: 0.8}
    strategy: {name: drr_sample, dm: default, k: 8, threshold: 0.8}
    strategy: {name: drr_feedback, dm: default, judge: dm, threshold: 0.5, rounds: 2}

- ``drr_think`` (stop thinking): reason in segments of ``probe_every`` tokens; after each
  unfinished segment probe for the current answer (the collector's cue), score the state with the
  DM and stop, answering with the probe's answer, once P(correct) >= ``threshold``.
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
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, model_validator

from ponder.aggregator.registry import AggregatorField
from ponder.answers import extract_answer
from ponder.errors import ConfigError, InputError
from ponder.prompts import load_template, template_hash
from ponder.protocol.actions import Flow, Fork, Note, Outcome, Task
from ponder.protocol.requests import Message
from ponder.protocol.strategy import Requirement
from ponder.stopping.features import CheckpointState, majority
from ponder.stopping.model import DM, load_dm
from ponder.strategies.cot import PROMPT_VARIABLES, ChainOfThought, cot_messages
from ponder.strategies.drr_oneshot import one_call_samples
from ponder.strategies.probed_trace import (
    CUE_SEPARATOR,
    Checkpoint,
    ProbedTraceFields,
    TraceLog,
    critique_flow,
)
from ponder.strategies.registry import register_strategy
from ponder.strategies.sampling import ensure_some_answer


def withhold(
    out: Outcome, p: float | None, abstain_below: float | None, calibrated: bool = True
) -> Outcome:
    """Put ``p`` on the outcome (as ``data["p_correct"]`` too when it is the DM's calibrated
    P(correct), which ``RunResult.p_correct`` reads); withhold the answer, clearly marked, when
    ``p`` is under ``abstain_below``."""
    out.confidence = p
    if calibrated and p is not None:
        out.data["p_correct"] = p
    if abstain_below is not None and p is not None and p < abstain_below:
        out.data["abstained"] = True
        out.data["withheld_answer"] = out.answer
        out.data["abstain_below"] = abstain_below
        out.answer = None
    return out


class ProbedReasoner(ProbedTraceFields):
    """Shared fields and the DM-judged probed trace of the DRR strategies (not registered)."""

    name: ClassVar[str] = "_drr_base"

    dm: str = "default"
    allow_other_reasoner: bool = False
    abstain_below: float | None = Field(None, ge=0.0, le=1.0)
    temperature: float = Field(0.7, ge=0.0, le=2.0)

    _judge: DM | None = PrivateAttr(default=None)

    def judged_templates(self) -> list[str]:
        return [self.system_template, self.user_template, self.cue_template]

    @model_validator(mode="after")
    def _dm_fits(self) -> ProbedReasoner:
        load_template(self.system_template, allowed=())
        load_template(self.user_template, allowed=PROMPT_VARIABLES)
        load_template(self.cue_template, allowed=())
        if self.dm_needed():
            probes = self.uses_probes()
            templates = self.judged_templates() if probes else self.judged_templates()[:2]
            dm = self.judge_model()
            dm.check_probes(probes)
            dm.check_settings(
                {n: template_hash(n) for n in templates},
                self.probe_every if probes else None,
                self.allow_other_reasoner,
            )
        return self

    def dm_needed(self) -> bool:
        return True

    def uses_probes(self) -> bool:
        """Whether its traces are probed (segments + probes); ``drr_sample``'s ``probes``."""
        return True

    def judge_model(self) -> DM:
        """The DM artifact, read once per strategy (not on every trace)."""
        if self._judge is None:
            try:
                # no backend hands strategies hidden states: a DM trained with them judges
                # with its fallback scorer here (or is refused when it has none)
                self._judge = load_dm(self.dm).without_hidden()
            except InputError as exc:  # a config names the artifact: say which field
                raise ConfigError("dm", str(exc)) from exc
        return self._judge

    def trace(
        self,
        messages: tuple[Message, ...],
        seed: int | None,
        stop_at: float | None,
        probes: bool = True,
    ) -> Flow:
        """One trace in segments with probes; stops early once the DM's P >= ``stop_at``.

        Returns an ``Outcome`` whose ``data`` holds ``trace`` (a ``TraceLog``), ``p`` (the DM's
        P(correct) at the last state, ``None`` without probes), ``stopped_at`` (tokens) and
        ``early`` (stopped before the reasoner finished).
        """
        dm = self.judge_model() if probes else None
        log = TraceLog(seed=seed)
        answers: list[str | None] = []
        p: float | None = None

        def judge(at: Checkpoint) -> Generator[Any, Any, float | None]:
            """The DM's P(correct) at each probed checkpoint; stop once it reaches ``stop_at``."""
            nonlocal p
            assert dm is not None
            if at.answer is not None:
                answers.append(at.answer)
            if at.cut or at.answer is None:  # the final state is judged after the trace
                return None
            state = CheckpointState(
                at=log.tokens,
                answers=tuple(answers),
                lp=log.lp,
                conf=log.conf,
                finished=False,
                cut=False,
                max_tokens=dm.max_tokens,
            )
            p = dm.p_checkpoint(state)
            stop = stop_at is not None and p >= stop_at
            yield Note(
                "drr_checkpoint",
                {"at": log.tokens, "answer": answers[-1], "p": round(p, 4), "stop": stop},
            )
            return p if stop else None

        end = yield from self.probed_trace(
            messages,
            log,
            self.temperature,
            probes=dm is not None,
            checkpoint=judge if dm is not None else None,
        )
        if end.failure is not None:
            # the best answer so far: the last probe's (with its score), as budget-limited
            return Outcome(
                answer=answers[-1] if answers else None,
                text=log.text,
                budget_limited=end.failure.budget,
                data={"trace": log, "p": p, "early": False, "error": str(end.failure.error)},
                error=None if end.failure.budget else end.failure.error,
            )
        if end.how == "stopped":
            cue = self.cue()
            text = log.text.rstrip() + CUE_SEPARATOR + cue + (answers[-1] or "") + "}"
            data = {"trace": log, "p": p, "early": True, "stopped_at": log.tokens}
            return Outcome(answer=answers[-1], text=text, data=data)
        cut = end.how == "cut"
        answer = extract_answer(log.text)
        if answer is None and cut and log.probes:
            answer = log.probes[-1]["answer"]
        if dm is not None:
            state = CheckpointState.ended(log, answers, answer, cut=cut, max_tokens=dm.max_tokens)
            p = dm.p_checkpoint(state)
            yield Note("drr_final", {"at": log.tokens, "answer": answer, "p": round(p, 4)})
        data = {"trace": log, "p": p, "early": False, "stopped_at": log.tokens}
        return Outcome(answer=answer, text=log.text, data=data)

    def flow(self, task: Task) -> Flow:  # pragma: no cover - abstract in practice
        raise NotImplementedError


def _summary(log: TraceLog) -> dict[str, Any]:
    return {"tokens": log.tokens, "probes": len(log.probes), "usage": dict(log.usage)}


@register_strategy
class StopThinking(ProbedReasoner):
    """Stop one trace at the first checkpoint where the DM's P(correct) >= ``threshold``."""

    name: ClassVar[str] = "drr_think"

    threshold: float = Field(0.8, ge=0.0, le=1.0)

    def flow(self, task: Task) -> Flow:
        messages = cot_messages(task, self.system_template, self.user_template)
        out = yield from self.trace(messages, self.seed, self.threshold)
        if out.error is not None and out.answer is None:
            raise out.error  # as ``cot``: a failed call (not the budget) fails the run
        log: TraceLog = out.data.pop("trace")
        out.data.update(_summary(log))
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

    def one_call(self) -> ChainOfThought:
        """The ``cot`` whose request a probe-free round sends (the collection's settings)."""
        return ChainOfThought(
            temperature=self.temperature,
            top_p=self.top_p,
            max_tokens=self.max_tokens,
            logprobs=True,
            top_logprobs=max(self.top_logprobs, 1),
            system_template=self.system_template,
            user_template=self.user_template,
        )

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
                    o.data.update(_summary(log))
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


@register_strategy
class Feedback(ProbedReasoner):
    """Send a finished answer back to be re-examined while its judge scores it low."""

    name: ClassVar[str] = "drr_feedback"

    judge: Literal["dm", "self_critique"] = "dm"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    rounds: int = Field(2, ge=0, le=8)
    reexamine_template: str = "drr_reexamine_user"
    critique_template: str = "self_critique_user"

    def dm_needed(self) -> bool:
        return self.judge == "dm"

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
            out = yield from self.trace(messages, self.seed, None, probes=self.judge == "dm")
            if best is not None and (out.error is not None or out.budget_limited):
                return (yield from self._kept(best, out, r, history))
            if out.error is not None and out.answer is None:
                raise out.error
            log: TraceLog = out.data.pop("trace")
            if self.judge == "dm":
                score = out.data.get("p")
            else:
                score = yield from self._critique(messages, out.text)
            history.append({"round": r, "answer": out.answer, "score": score, **_summary(log)})
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
