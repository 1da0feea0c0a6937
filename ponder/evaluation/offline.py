"""Offline aggregation: compare aggregators on pre-sampled solutions, with no sampling.

``../shared/data/aggregation/math_cot_100.jsonl`` holds, per MATH problem, 8 solutions
(``responses``), their extracted answers (``preds``) and reward-model scores (``rm_scores``);
an optional ``confidences`` list (mean token logprobs) feeds ``weighted`` voting.
``offline_jobs`` turns each aggregator into an ``EvalJob`` whose strategy replays the fixed
samples into the aggregator; only a model-based aggregator (SSA, LLM-select, a judge) calls a
model, through the ``aggregator`` role (falling back to the default backend).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import ConfigDict

from ponder.aggregator.base import Aggregator
from ponder.aggregator.registry import AggregatorField
from ponder.answers import extract_answer
from ponder.backends.base import Backend
from ponder.behaviour.datasets import Item, read_jsonl
from ponder.config import ChainConfig
from ponder.errors import CapabilityMissing, InputError
from ponder.evaluation.runner import EvalJob
from ponder.protocol.actions import Flow, Outcome, Task
from ponder.protocol.requests import Completion, GenerationRequest
from ponder.protocol.strategy import Strategy


class Replay(Strategy):
    """Hands fixed samples to an aggregator (not registered: built by the offline harness)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    name: ClassVar[str] = "replay"

    aggregator: AggregatorField
    samples: tuple[Any, ...]

    def flow(self, task: Task) -> Flow:
        samples = list(self.samples)
        out = yield from self.aggregator.flow(task, samples)
        out.samples = samples
        return out


def load_sample_sets(path: str) -> list[Item]:
    """Items whose ``extra["samples"]`` are the pre-sampled ``Outcome``s: from a sample-set JSONL,
    or from a behaviour collection directory (``ponder collect``; logprob confidences, probes and
    self-critique included, and the reasoner named for the ``learned`` aggregator's check)."""
    if Path(path).is_dir():
        return _collection_items(path)
    items = []
    for i, row in enumerate(read_jsonl(path)):
        if "responses" not in row:
            raise InputError(f"{path} row {i + 1} has no 'responses' (not a sample-set file)")
        responses = row["responses"]
        preds = row.get("preds") or [None] * len(responses)
        scores = row.get("rm_scores") or [None] * len(responses)
        confs = row.get("confidences") or [None] * len(responses)
        samples = [
            Outcome(
                answer=p if p not in (None, "") else extract_answer(text),
                text=text,
                confidence=conf,
                data={"score": sc} if sc is not None else {},
            )
            for text, p, sc, conf in zip(responses, preds, scores, confs, strict=True)
        ]
        items.append(
            Item(
                str(row.get("idx", row.get("id", i))),
                row["question"],
                str(row["answer"]),
                {"samples": samples},
            )
        )
    return items


def _collection_items(path: str) -> list[Item]:
    from ponder.behaviour.outcomes import sample_outcomes
    from ponder.behaviour.records import read_collection

    manifest, records = read_collection(path)
    if not records:
        raise InputError(f"{path} holds no question records yet")
    return [
        Item(r.id, r.question, r.gold, {"samples": sample_outcomes(r, manifest)}) for r in records
    ]


class NoModel(Backend):
    """The backend of offline runs with pure aggregators: any call is a clear error."""

    name = "none"

    async def generate(self, request: GenerationRequest) -> Completion:
        raise CapabilityMissing(
            "offline aggregation without a model: this aggregator needs one "
            "(give --aggregator-config with a backend)"
        )


def offline_jobs(
    aggregators: Sequence[tuple[str, Aggregator]], chain: ChainConfig | None = None
) -> list[EvalJob]:
    """One job per (label, aggregator); ``chain`` supplies the backends for model aggregators."""
    chain = chain or ChainConfig.from_dict({})
    jobs = []
    for label, agg in aggregators:

        def strategy_for(item: Item, agg: Aggregator = agg) -> Strategy:
            return Replay(aggregator=agg, samples=tuple(item.extra["samples"]))

        jobs.append(EvalJob(label, chain, strategy_for))
    return jobs
