"""Reasoning strategies. Importing this package registers the built-in ones."""

from ponder.protocol.actions import Flow, Fork, Generate, Note, Outcome, Task
from ponder.protocol.strategy import Strategy
from ponder.strategies.adaptive import AdaptiveSample
from ponder.strategies.cot import ChainOfThought
from ponder.strategies.deepconf import DeepConfSample
from ponder.strategies.drr import Feedback, StopSampling, StopThinking
from ponder.strategies.drr_bayes import BayesStopSampling
from ponder.strategies.escalate import Escalate
from ponder.strategies.parallel import ParallelSample
from ponder.strategies.registry import (
    StrategyField,
    build_strategy,
    register_strategy,
    strategy_names,
)
from ponder.strategies.summarize import SummarizingReasoner
from ponder.strategies.tool_loop import ToolLoop

__all__ = [
    "AdaptiveSample",
    "BayesStopSampling",
    "Escalate",
    "ParallelSample",
    "ChainOfThought",
    "DeepConfSample",
    "Feedback",
    "Flow",
    "Fork",
    "Generate",
    "Note",
    "Outcome",
    "StopSampling",
    "StopThinking",
    "Strategy",
    "StrategyField",
    "SummarizingReasoner",
    "Task",
    "ToolLoop",
    "build_strategy",
    "register_strategy",
    "strategy_names",
]
