"""The shared core of the DRR strategies: the DM-judged probed trace and the withheld answer.

Use ``ProbedReasoner`` as the base of a strategy that reasons in probed segments judged by a
trained DM (``drr_think``, ``drr_sample``, ``drr_bayes``, ``drr_feedback``): it holds their
shared fields (``dm``, ``allow_other_reasoner``, ``abstain_below``, ``temperature``), checks at
config time that the DM fits the templates and probe settings, reads the DM once, and its
``trace`` sub-flow drives the collector's probed-trace loop with the DM judging each checkpoint.
Use ``withhold`` to put a P(correct) on an outcome and withhold an answer under ``abstain_below``,
and ``trace_summary`` for the small per-trace numbers an outcome keeps instead of the log.
Not registered itself: the strategies are in ``ponder.strategies.drr`` and ``drr_feedback``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr, model_validator

from ponder.answers import extract_answer
from ponder.errors import ConfigError, InputError
from ponder.prompts import load_template, template_hash
from ponder.protocol.actions import Flow, Note, Outcome, Task
from ponder.protocol.requests import Message
from ponder.stopping.features import CheckpointState, agreed
from ponder.stopping.model import DM, load_dm
from ponder.strategies.cot import PROMPT_VARIABLES, ChainOfThought
from ponder.strategies.drr_thinking import final_state, thinking_outcome, thinking_settings
from ponder.strategies.probed_trace import (
    CUE_SEPARATOR,
    Checkpoint,
    ProbedTraceFields,
    TraceEnd,
    TraceLog,
)
from ponder.strategies.thinking_trace import ThinkingLog, ThinkingSettings, thinking_trace


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
            thinking = self.thinking_format()
            if thinking is not None:  # the backend's think-first prompt shaped the traces
                templates.append(thinking.template)
            dm = self.judge_model()
            dm.check_probes(probes)
            dm.check_thinking(None if thinking is None else thinking.model_dump(mode="json"))
            dm.check_settings(
                {n: template_hash(n) for n in templates},
                self.probe_every if probes else None,
                self.allow_other_reasoner,
                thinking=None if thinking is None else thinking_settings(thinking, self.max_tokens),
            )
        return self

    def dm_needed(self) -> bool:
        return True

    def thinking_format(self) -> ThinkingSettings | None:
        """The thinking format its traces are in (``drr_think``'s ``thinking``); ``None``: plain."""
        return None

    def dynasor_agree(self) -> int | None:
        """Stop a trace once this many probe answers agree (``drr_think``'s ``stop: dynasor``)
        instead of by the DM; ``None``: the DM judges."""
        return None

    def answer_from_probe(self) -> bool:
        """A thinking trace stopped early answers with the probe's answer (else its answer
        part's); ``ponder.strategies.drr_thinking``."""
        return True

    def uses_probes(self) -> bool:
        """Whether its traces are probed (segments + probes); ``drr_sample``'s ``probes``."""
        return True

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
        """One trace in segments with probes; stops early once the DM's P >= ``stop_at`` (or, with
        ``dynasor_agree()`` = m, once the last m probe answers agree: no DM).

        In the thinking format (``thinking_format()`` set) the trace is the collector's
        ``thinking_trace``: the checkpoints are inside the thinking (the probe at the cap
        included, as replay's states have it) and a stopped thinking is closed and answered
        within the answer allowance (``ponder.strategies.drr_thinking``).

        Returns an ``Outcome`` whose ``data`` holds ``trace`` (a ``TraceLog``), ``p`` (the DM's
        P(correct) at the last state, ``None`` without probes or a DM), ``stopped_at`` (tokens;
        thinking tokens in the thinking format) and ``early`` (stopped before the reasoner
        finished).
        """
        thinking = self.thinking_format()
        agree = self.dynasor_agree()
        dm = self.judge_model() if probes and agree is None else None
        watched = dm is not None or (probes and agree is not None)
        log = ThinkingLog(seed=seed) if thinking is not None else TraceLog(seed=seed)
        answers: list[str | None] = []
        p: float | None = None

        def judge(at: Checkpoint) -> Generator[Any, Any, bool | None]:
            """The stop rule at each probed checkpoint: the DM's P(correct) >= ``stop_at``, or
            the last ``agree`` probe answers agreeing."""
            nonlocal p
            if at.answer is not None:
                answers.append(at.answer)
            # a plain trace's end (its cut) is judged after it; a thinking trace's cut is not
            # its end (the answer comes after), so its probe there is a checkpoint like the rest
            if at.answer is None or (at.cut and thinking is None):
                return None
            if agree is not None:
                stop = agreed([q["answer"] for q in log.probes], agree)
                note = {"at": log.tokens, "answer": answers[-1], "agree": agree, "stop": stop}
                yield Note("dynasor_checkpoint", note)
                return True if stop else None
            assert dm is not None
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
            return True if stop else None

        hook = judge if watched else None
        end: TraceEnd[bool]
        if isinstance(log, ThinkingLog) and thinking is not None:
            end = yield from thinking_trace(self, messages, log, self.temperature, thinking, hook)
        else:
            end = yield from self.probed_trace(
                messages, log, self.temperature, probes=watched, checkpoint=hook
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
        if isinstance(log, ThinkingLog):
            out = thinking_outcome(log, end.how, answers, p, self.answer_from_probe())
            if dm is not None and not out.data["early"]:
                state = final_state(log, answers, out.answer, dm.max_tokens)
                out.data["p"] = p = dm.p_checkpoint(state)
                yield Note("drr_final", {"at": state.at, "answer": out.answer, "p": round(p, 4)})
            return out
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


def trace_summary(log: TraceLog) -> dict[str, Any]:
    """What an outcome keeps of a trace's log: its tokens, probe count and usage."""
    return {"tokens": log.tokens, "probes": len(log.probes), "usage": dict(log.usage)}
