"""Ponder: inference-time reasoning orchestration.

Compose a base LLM with test-time strategies and run the chain on the embedded local model, any
OpenAI-compatible endpoint, or (optionally) in-process vLLM. Start with ``ponder.run(question)``;
for many runs over the same backends, ``async with ponder.Session(backends) as session`` and
``await session.run(strategy, question, limits=ponder.RunLimits(...))``.
"""

from ponder.api import arun, load_config, run
from ponder.backends import Backend, FakeBackend, OpenAICompatibleBackend
from ponder.config import ChainConfig
from ponder.errors import PonderError

# The one-run engine that Session extends: importable here for existing code, not advertised.
from ponder.orchestrator import Orchestrator as Orchestrator
from ponder.orchestrator import RunLimits, RunResult, Session, Trace
from ponder.protocol.actions import Outcome
from ponder.strategies import ChainOfThought, Strategy, Task

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "ChainConfig",
    "ChainOfThought",
    "FakeBackend",
    "OpenAICompatibleBackend",
    "Outcome",
    "PonderError",
    "RunLimits",
    "RunResult",
    "Session",
    "Strategy",
    "Task",
    "Trace",
    "arun",
    "load_config",
    "run",
]
