"""SSA training examples built from a behaviour collection, in the exact inference prompt.

Use ``build_ssa_examples(collection_dir, ...)`` (or ``ponder ssa data``) to turn the sample sets
the reasoner produced on labelled *train* questions into prompts for training a compact SSA
aggregator. Each example's ``messages`` are made by ``SSA.request`` itself, the same call the
``ssa`` aggregator makes at inference, so the prompt (template, candidate numbering, truncation
to ``max_candidate_tokens``) is byte-identical for the same candidates.

A set is drawn as ``k`` of a question's samples (``subsets`` draws per question, seeded). Sets
fall in three kinds, and the mix is balanced on purpose:

- ``teaching``: the majority of the set is wrong but some candidate is right (kept, all);
- ``majority_right``: the majority is right (kept up to ``majority_right_per_teaching`` per
  teaching set, at least one per question batch so an all-easy dataset still yields examples);
- ``none_right``: no candidate is right (kept as ``none_right_share`` of the output).

Rejection-sampling targets (aggregator outputs that reached the gold answer) are added by a
later step; ``gold`` is kept on every example for it.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.aggregator.ssa import SSA
from ponder.aggregator.voting import group_answers
from ponder.behaviour.records import QuestionRecord, read_collection
from ponder.errors import InputError
from ponder.prompts.loader import load_template
from ponder.protocol.actions import Outcome, Task

KINDS = ("teaching", "majority_right", "none_right")


@dataclass(frozen=True)
class SSAExample:
    """One training prompt: the sample set shown to the aggregator, and what is known of it."""

    question_id: str
    kind: str
    messages: list[dict[str, Any]]
    gold: str
    candidates: list[str | None]
    majority: str | None

    def to_json(self) -> str:
        return json.dumps(self.__dict__, ensure_ascii=False)


def candidate_outcomes(record: QuestionRecord, picks: list[int]) -> list[Outcome]:
    """The picked samples as SSA candidates: answer and text only, all an SSA prompt shows
    (``ponder.behaviour.outcomes.sample_outcomes`` gives the full outcome for aggregators)."""
    return [Outcome(answer=record.samples[i].answer, text=record.samples[i].text) for i in picks]


def kind_of(outcomes: list[Outcome], gold: str, correct: list[bool]) -> tuple[str, str | None]:
    groups = group_answers(outcomes)
    if not groups:
        return "none_right", None
    best = max(groups, key=lambda g: len(g.members))  # first seen wins ties, as majority does
    majority_right = correct[best.members[0]]
    if majority_right:
        return "majority_right", best.answer
    return ("teaching" if any(correct) else "none_right"), best.answer


def build_ssa_examples(
    collection: str | Path,
    *,
    k: int | Sequence[int] = 5,
    subsets: int = 4,
    seed: int = 0,
    aggregator: SSA | None = None,
    majority_right_per_teaching: float = 1.0,
    none_right_share: float = 0.1,
) -> tuple[list[SSAExample], dict[str, Any]]:
    """Examples and a manifest (sampler, template hash, k, truncation, counts); see module doc."""
    manifest, records = read_collection(collection)
    if not records:
        raise InputError(f"collection {collection} has no records yet")
    agg = aggregator or SSA()
    rng = random.Random(seed)
    pools: dict[str, list[SSAExample]] = {kind: [] for kind in KINDS}
    ks = [k] if isinstance(k, int) else list(k)
    for rec, size in ((r, kk) for r in records for kk in ks):
        n = len(rec.samples)
        if n < size:
            raise InputError(f"question {rec.id} has {n} samples, fewer than k={size}")
        seen: set[tuple[int, ...]] = set()
        for _ in range(subsets):
            picks = tuple(sorted(rng.sample(range(n), size)))
            if picks in seen:
                continue
            seen.add(picks)
            outs = candidate_outcomes(rec, list(picks))
            correct = [rec.samples[i].correct for i in picks]
            kind, majority = kind_of(outs, rec.gold, correct)
            if not any(o.answer is not None for o in outs):
                continue  # the inference aggregator never asks a model about an empty set
            req, _ = agg.request(Task(rec.question), outs)
            pools[kind].append(
                SSAExample(
                    rec.id,
                    kind,
                    [dict(m) for m in req.messages or ()],
                    rec.gold,
                    [o.answer for o in outs],
                    majority,
                )
            )
    teaching = pools["teaching"]
    easy_cap = max(1, round(len(teaching) * majority_right_per_teaching))
    easy = rng.sample(pools["majority_right"], min(easy_cap, len(pools["majority_right"])))
    body = len(teaching) + len(easy)
    hard_cap = (
        round(body * none_right_share / (1 - none_right_share)) if none_right_share < 1 else 0
    )
    hard = rng.sample(pools["none_right"], min(hard_cap, len(pools["none_right"])))
    examples = teaching + easy + hard
    rng.shuffle(examples)
    info = {
        "format": "ponder.ssa-data/1",
        "sampler": manifest.model.model_dump(),
        "collection": str(collection),
        "template": agg.user_template,
        "template_sha256": hashlib.sha256(
            load_template(agg.user_template).source.encode()
        ).hexdigest()[:16],
        "k": ks[0] if len(ks) == 1 else ks,
        "subsets": subsets,
        "seed": seed,
        "max_candidate_tokens": agg.max_candidate_tokens,
        "available": {kind: len(v) for kind, v in pools.items()},
        "kept": dict(Counter(e.kind for e in examples)),
    }
    return examples, info


def write_ssa_examples(examples: list[SSAExample], info: dict[str, Any], out: str | Path) -> Path:
    """Write ``out`` (JSONL) and ``out``.manifest.json, each atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("".join(e.to_json() + "\n" for e in examples), encoding="utf-8")
    tmp.replace(out)
    man = out.with_name(out.name + ".manifest.json")
    man.write_text(json.dumps(info, indent=2), encoding="utf-8")
    return out
