"""The evaluation harness behind ``ponder eval``: datasets, runner, summary, plot, offline mode."""

from ponder.behaviour.datasets import Item, load_items, select
from ponder.evaluation.runner import EvalJob, evaluate
from ponder.evaluation.summary import format_table, summarize

__all__ = ["EvalJob", "Item", "evaluate", "format_table", "load_items", "select", "summarize"]
