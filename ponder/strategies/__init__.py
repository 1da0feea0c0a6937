"""Reasoning strategies. Importing this package registers the built-in ones."""

from ponder.protocol.actions import Flow, Fork, Generate, Note, Outcome, Task
from ponder.strategies.adaptive import AdaptiveSample
from ponder.strategies.base import Strategy
from ponder.strategies.cot import ChainOfThought
from ponder.strategies.deepconf import DeepConfSample
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
    "ParallelSample",
    "ChainOfThought",
    "DeepConfSample",
    "Flow",
    "Fork",
    "Generate",
    "Note",
    "Outcome",
    "Strategy",
    "StrategyField",
    "SummarizingReasoner",
    "Task",
    "ToolLoop",
    "build_strategy",
    "register_strategy",
    "strategy_names",
]
