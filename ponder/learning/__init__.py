"""The learning loop: record what the reasoner does on labelled questions, learn from it.

Use it to turn a reasoner's own behaviour into judges and policies, with no manual labels::

    ponder collect  --dataset gsm8k-train --out DIR     # behaviour data (resumable JSONL)
    -> ponder.learning.records     one format: question, k samples, probes, logprobs, correctness
    -> DRR judge (ponder.stopping), learned aggregator (ponder.aggregator), SSA training examples
    -> artifacts carrying the collection's Manifest (which reasoner they describe)

``collect_strategy`` is the sans-I/O part (a strategy like any other: the orchestrator does every
call, so budget, retries, usage and traces are the usual ones); ``collector`` drives it over a
dataset, grades, and appends one line per question so a crash loses nothing written.
"""

from ponder.learning.collect_strategy import BehaviourCollector
from ponder.learning.records import (
    FORMAT,
    Manifest,
    ProbeRecord,
    QuestionRecord,
    SampleRecord,
    read_collection,
)

__all__ = [
    "FORMAT",
    "BehaviourCollector",
    "Manifest",
    "ProbeRecord",
    "QuestionRecord",
    "SampleRecord",
    "read_collection",
]
