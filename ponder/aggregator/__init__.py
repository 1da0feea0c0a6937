"""Aggregators: turn k sampled outcomes into one answer. Importing this registers the built-ins.

- ``majority``: most common equivalent answer (self-consistency);
- ``weighted``: votes weighted by confidence (mean logprob) or a scorer's score;
- ``best_of_n``: the highest-scoring candidate (reward model, function or LLM judge);
- ``ssa``: a compact model reasons across the candidate set (Sample Set Aggregator);
- ``llm_select``: a model picks one candidate by number;
- ``confidence_filter``: DeepConf offline: top-η samples by trace confidence, weighted vote;
- ``learned``: a small trained model scores each answer group (``ponder aggregate train``);
- ``judge_weighted``: votes weighted by each sample's judge P(correct) (``drr_sample`` traces).
"""

from ponder.aggregator.base import Aggregator
from ponder.aggregator.best_of_n import BestOfN
from ponder.aggregator.confidence_filter import ConfidenceFiltered
from ponder.aggregator.judge_weighted import JudgeWeighted
from ponder.aggregator.learned import LearnedAggregator
from ponder.aggregator.llm_select import LLMSelect
from ponder.aggregator.registry import (
    AggregatorField,
    aggregator_names,
    build_aggregator,
    register_aggregator,
)
from ponder.aggregator.scorers import Scorer
from ponder.aggregator.ssa import SSA
from ponder.aggregator.voting import Majority, Weighted, agreement, group_answers

__all__ = [
    "SSA",
    "Aggregator",
    "AggregatorField",
    "BestOfN",
    "ConfidenceFiltered",
    "JudgeWeighted",
    "LLMSelect",
    "LearnedAggregator",
    "Majority",
    "Scorer",
    "Weighted",
    "agreement",
    "aggregator_names",
    "build_aggregator",
    "group_answers",
    "register_aggregator",
]
