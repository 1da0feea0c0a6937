"""Hand-made DMs, records and a scripted reasoner for the DRR tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from ponder.backends.fake import FakeBackend
from ponder.behaviour.records import (
    MANIFEST,
    RECORDS,
    DatasetInfo,
    Manifest,
    ModelInfo,
    ProbeRecord,
    QuestionRecord,
    SampleRecord,
)
from ponder.orchestrator.engine import Orchestrator
from ponder.orchestrator.result import RunResult
from ponder.prompts.loader import template_hash
from ponder.protocol.actions import Task
from ponder.protocol.requests import Choice, GenerationRequest
from ponder.stopping.features import CHECKPOINT_FEATURES, SAMPLING_FEATURES
from ponder.stopping.model import DM, Linear, Scorer
from ponder.strategies.drr_feedback import Feedback

TEMPLATES = ("cot_system", "cot_user", "probe_cue", "self_critique_user")


def manifest(probe_every: int = 64, max_tokens: int = 320, k: int = 8, name: str = "m") -> Manifest:
    return Manifest(
        model=ModelInfo(name=name, sha256=f"sha-{name}"),
        templates={n: template_hash(n) for n in TEMPLATES},
        settings={"k": k, "max_tokens": max_tokens, "probe_every": probe_every},
        seed=0,
        dataset=DatasetInfo(path="d.jsonl", sha256="s", rows=10),
    )


def linear(features: tuple[str, ...], weights: dict[str, float], intercept: float) -> Scorer:
    n = len(features)
    return Scorer(
        features=list(features),
        model=Linear(
            mean=[0.0] * n,
            scale=[1.0] * n,
            coef=[weights.get(f, 0.0) for f in features],
            intercept=intercept,
        ),
    )


def agree_dm(m: Manifest | None = None) -> DM:
    """P(correct) = 0.88 when the current answer repeats the previous one, else 0.12; the
    majority is trusted (P 0.62) once two samples agree (Beta stay 0.875)."""
    return DM(
        manifest=m or manifest(),
        checkpoint=linear(CHECKPOINT_FEATURES, {"agree_prev": 4.0}, -2.0),
        sampling=linear(SAMPLING_FEATURES, {"beta_stay": 12.0}, -10.0),
    )


def sample(
    answers: list[str | None],
    final: str | None,
    gold: str,
    tokens: int,
    cut: bool = False,
    every: int = 64,
    lp: float = -0.2,
) -> SampleRecord:
    probes = [
        ProbeRecord(at=every * (i + 1), answer=a, correct=a == gold, tokens=2)
        for i, a in enumerate(answers)
    ]
    return SampleRecord(
        seed=0,
        text="t",
        answer=final,
        correct=final == gold,
        finish_reason="length" if cut else "stop",
        tokens=tokens,
        lp=[lp] * tokens,
        conf=[-2 * lp] * tokens,
        probes=probes,
        critique_p_yes=0.5,
    )


def synthetic(out: Path, questions: int = 30, k: int = 6, seed: int = 0, first_id: int = 0):
    """A collection where right traces are confident and settle early: a separable signal."""
    rng = random.Random(seed)
    recs = []
    for qi in range(questions):
        gold = str(qi + 100)
        samples = []
        for _ in range(k):
            good = rng.random() < 0.4
            length = rng.choice([150, 200, 260])
            answers = [
                gold if good and at >= 128 else str(rng.randint(0, 9))
                for at in (64, 128, 192)
                if at < length
            ]
            final = gold if good else str(rng.randint(0, 9))
            samples.append(sample(answers, final, gold, length, lp=-0.1 if good else -0.7))
        recs.append(QuestionRecord(id=str(first_id + qi), question="q", gold=gold, samples=samples))
    m = manifest(k=k)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(m.model_dump_json(), encoding="utf-8")
    (out / RECORDS).write_text("".join(r.model_dump_json() + "\n" for r in recs), encoding="utf-8")
    return m, recs


def reasoner(request: GenerationRequest, i: int) -> Choice:
    """A scripted reasoner (probe_every=4): two 4-token segments, then ``so \\boxed{A}``.

    Even seeds write "a b c d" and answer 5 (probes too), odd seeds "e f g h" and 7. Critique: yes
    with P 0.8.
    """
    prefix = request.assistant_prefix or ""
    if request.purpose == "probe":  # the answer the partial trace leads to
        ans = "7" if " e f" in prefix else "5"
    else:
        ans = "5" if (request.params.seed or 0) % 2 == 0 else "7"
    top = [{"a": -0.2, "b": -1.6}]
    if request.purpose == "probe":
        return Choice(ans, "stop", 1, token_logprobs=[-0.1], top_logprobs=top)
    if request.purpose == "critique":
        return Choice("yes", "stop", 1, top_logprobs=[{"yes": -0.223, "no": -1.609}])
    if len(prefix.split()) < 8:
        words = " a b c d" if ans == "5" else " e f g h"
        return Choice(words, "length", 4, token_logprobs=[-0.2] * 4, top_logprobs=top * 4)
    text = f" so \\boxed{{{ans}}}"
    return Choice(text, "stop", 2, token_logprobs=[-0.2] * 2, top_logprobs=top * 2)


async def check_feedback_keeps_its_answer_under_budget(
    fb: Feedback, script: Callable[[GenerationRequest, int], Choice]
) -> RunResult:
    """Room for ``fb``'s first round and not for the re-examination: its first answer ("5")
    stands, budget-limited and marked (``failed_round`` 1, a ``drr_feedback_failed`` event)."""
    once = await Orchestrator(FakeBackend(script)).run(
        fb.model_copy(update={"rounds": 0}), Task("q?")
    )
    r = await Orchestrator(FakeBackend(script), budget_tokens=once.usage.total_tokens + 10).run(
        fb, Task("q?")
    )
    assert r.answer == once.answer == "5" and r.budget_limited
    assert r.outcome.data["failed_round"] == 1
    assert [h["answer"] for h in r.outcome.data["rounds"]] == ["5", None]
    assert [e["round"] for e in r.trace.of_type("decision") if e["event"] == "drr_feedback_failed"]
    return r
