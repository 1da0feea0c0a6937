"""Scorers: a number per candidate, for best-of-n and score-weighted voting.

Four kinds, chosen by ``kind``:

- ``precomputed``: the score already on each sample (``Outcome.score``; offline sets with
  reward-model scores, or a strategy that scored its own samples);
- ``function``: a Python callable named ``"package.module:function"``, called as
  ``f(question, text, answer) -> float`` (local, cheap scores; it must not do I/O);
- ``reward_model``: a reward model behind HTTP; one ``RewardRequest`` per candidate (the question
  as the user turn, the candidate's text as the assistant turn, after ``system`` if set) with
  ``role`` (default ``"reward"``), which the chain routes to a ``kind: reward_model`` backend
  (``ponder.backends.reward``: vLLM's ``/pooling`` or ``/classify``). A failed call
  leaves that candidate unscored; if *every* call failed (not for budget) the run fails with the
  translated error, naming the URL, rather than silently falling back to majority;
- ``judge``: an LLM judge; one request per candidate with ``role`` (default ``"aggregator"``) asking
  for a 0–10 rating, parsed from the reply. Any OpenAI-compatible reward/judge model can serve it.
  Failures are handled as for ``reward_model``: a failed or unparsable reply leaves that candidate
  unscored, and if every call failed (not for budget) the run fails with the translated error.

Candidates without an answer are never scored (and so never win). Scoring is sans-I/O: ``score``
is a generator that may yield ``Generate`` or ``Score`` and returns the list.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from ponder.errors import ConfigError
from ponder.named_registry import Registry
from ponder.prompts import load_template
from ponder.protocol.actions import Generate, Note, Outcome, Score, Task
from ponder.protocol.requests import (
    Completion,
    GenerationFailure,
    GenerationRequest,
    Message,
    Reward,
    RewardFailure,
    RewardRequest,
    SamplingParams,
)

JUDGE_VARIABLES = {"question", "solution", "answer"}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def load_callable(path: str, field: str = "scorer.function") -> Callable[..., Any]:
    module, _, attr = path.partition(":")
    if not module or not attr:
        raise ConfigError(field, f"expected 'package.module:function', got {path!r}")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(field, f"cannot import {path!r}: {exc}") from None
    if not callable(fn):
        raise ConfigError(field, f"{path!r} is not callable")
    return fn  # type: ignore[no-any-return]


class Scorer(BaseModel):
    """How candidates are scored (see the module docstring for the kinds)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = "precomputed"
    """A registered scorer kind (``SCORER_KINDS``): precomputed, function, judge, reward_model."""
    function: str | None = None
    role: str | None = None
    """The backend role of ``judge`` ("aggregator" if unset) or ``reward_model`` ("reward")."""
    template: str = "judge_user"
    max_tokens: int = Field(16, gt=0)
    system: str | None = None
    """``reward_model``: a system message sent before the question (some reward models want one)."""
    _fn: Callable[..., Any] | None = PrivateAttr(default=None)
    """The ``function`` kind's callable, imported once when the config is loaded."""

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, kind: str) -> str:
        if kind not in SCORER_KINDS:
            valid = ", ".join(repr(n) for n in SCORER_KINDS.names())
            raise ValueError(f"unknown scorer kind {kind!r}; valid choices: {valid}")
        return kind

    @model_validator(mode="after")
    def _check(self) -> Scorer:
        check = SCORER_KINDS.get(self.kind, "kind").check
        if check is not None:
            check(self)
        return self

    @property
    def backend_role(self) -> str | None:
        """The role this scorer's calls go to; ``None`` for kinds that call no model."""
        default = SCORER_KINDS.get(self.kind, "kind").role
        return (self.role or default) if default else None

    def roles(self) -> set[str]:
        role = self.backend_role
        return {role} if role else set()

    def score(
        self, task: Task, samples: Sequence[Outcome]
    ) -> Generator[Any, Any, list[float | None]]:
        """One score per sample (``None``: unscored), by the kind's registered function."""
        got = SCORER_KINDS.get(self.kind, "kind").score(self, task, samples)
        if isinstance(got, list):
            return got
        return (yield from got)

    def _reward_scores(
        self, task: Task, samples: Sequence[Outcome]
    ) -> Generator[Any, Any, list[float | None]]:
        idx = [i for i, s in enumerate(samples) if s.answer is not None]
        head: tuple[Message, ...] = (
            ({"role": "system", "content": self.system},) if self.system else ()
        )
        reqs = [
            RewardRequest(
                messages=(
                    *head,
                    {"role": "user", "content": task.question},
                    {"role": "assistant", "content": samples[i].text},
                ),
                role=self.backend_role or "reward",
            )
            for i in idx
        ]
        results = (yield Score(tuple(reqs))) if reqs else []
        scores: list[float | None] = [None] * len(samples)
        for i, r in zip(idx, results, strict=True):
            if isinstance(r, Reward):
                scores[i] = r.score
        return (yield from _settle("reward_scores", scores, results))

    def _judge_scores(
        self, task: Task, samples: Sequence[Outcome]
    ) -> Generator[Any, Any, list[float | None]]:
        idx = [i for i, s in enumerate(samples) if s.answer is not None]
        tpl = load_template(self.template, allowed=JUDGE_VARIABLES)
        reqs = [
            GenerationRequest(
                messages=(
                    {
                        "role": "user",
                        "content": tpl.render(
                            question=task.question,
                            solution=samples[i].text,
                            answer=samples[i].answer,
                        ),
                    },
                ),
                params=SamplingParams(temperature=0.0, max_tokens=self.max_tokens),
                role=self.backend_role or "aggregator",
                purpose="judge",
            )
            for i in idx
        ]
        results = (yield Generate(tuple(reqs))) if reqs else []
        scores: list[float | None] = [None] * len(samples)
        for i, r in zip(idx, results, strict=True):
            if isinstance(r, Completion):
                m = _NUMBER.search(r.text)
                scores[i] = float(m.group()) if m else None
        return (yield from _settle("judge_scores", scores, results))


def _settle(
    event: str, scores: list[float | None], results: Sequence[Any]
) -> Generator[Any, Any, list[float | None]]:
    """Trace the scores and the failure count; if every call failed (not for budget), raise the
    first cause: the endpoint is down or misconfigured, and a silent unscored pick would hide it."""
    failures = [r for r in results if isinstance(r, GenerationFailure | RewardFailure)]
    yield Note(event, {"scores": scores, "failed": len(failures)})
    if results and len(failures) == len(results) and not any(f.budget for f in failures):
        raise failures[0].error
    return scores


def _as_float(v: Any) -> float | None:
    try:
        return None if v is None else float(v)
    except (TypeError, ValueError):
        return None


def with_scores(samples: Sequence[Outcome], scores: Sequence[float | None]) -> list[Outcome]:
    """Copies of ``samples`` with ``score`` set (and mirrored in ``data`` for records); the
    inputs are left alone."""
    out = []
    for s, sc in zip(samples, scores, strict=True):
        data = dict(s.data)
        if sc is not None:
            data["score"] = sc
        out.append(replace(s, data=data, score=sc if sc is not None else s.score))
    return out


def score_of(sample: Outcome) -> float | None:
    """A sample's score: ``Outcome.score``, else a ``data["score"]`` set after construction."""
    return sample.score if sample.score is not None else _as_float(sample.data.get("score"))


ScoreFn = Callable[[Scorer, Task, Sequence[Outcome]], Any]
"""Scores samples: returns the list, or is a generator (yielding actions) that returns it."""


@dataclass(frozen=True)
class ScorerKind:
    """A registered scorer kind: its ``score`` function, the ``role`` its calls go to by default
    (``None``: it calls no model) and a ``check`` run once when a config is loaded."""

    score: ScoreFn
    role: str | None = None
    check: Callable[[Scorer], None] | None = None


SCORER_KINDS: Registry[ScorerKind] = Registry("scorer kind")


def register_scorer(
    kind: str, *, role: str | None = None, check: Callable[[Scorer], None] | None = None
) -> Callable[[ScoreFn], ScoreFn]:
    """Register a scorer kind: ``@register_scorer("mine")`` on ``f(scorer, task, samples)``."""

    def add(fn: ScoreFn) -> ScoreFn:
        SCORER_KINDS.add(kind, ScorerKind(fn, role, check))
        return fn

    return add


@register_scorer("precomputed")
def _precomputed(scorer: Scorer, task: Task, samples: Sequence[Outcome]) -> list[float | None]:
    return [score_of(s) for s in samples]


def _resolve_function(scorer: Scorer) -> None:
    if not scorer.function:
        raise ValueError("kind 'function' needs 'function: package.module:callable'")
    scorer._fn = load_callable(scorer.function)


@register_scorer("function", check=_resolve_function)
def _function(scorer: Scorer, task: Task, samples: Sequence[Outcome]) -> list[float | None]:
    fn = scorer._fn or load_callable(scorer.function or "")
    return [
        _as_float(fn(task.question, s.text, s.answer)) if s.answer is not None else None
        for s in samples
    ]


def _check_template(scorer: Scorer) -> None:
    load_template(scorer.template, allowed=JUDGE_VARIABLES)


@register_scorer("reward_model", role="reward")
def _reward_model(scorer: Scorer, task: Task, samples: Sequence[Outcome]) -> Any:
    return scorer._reward_scores(task, samples)


@register_scorer("judge", role="aggregator", check=_check_template)
def _judge(scorer: Scorer, task: Task, samples: Sequence[Outcome]) -> Any:
    return scorer._judge_scores(task, samples)
