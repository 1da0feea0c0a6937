"""Ponder: inference-time reasoning orchestration.

Compose a base LLM with test-time strategies and run the chain on the embedded local model, any
OpenAI-compatible endpoint, or (optionally) in-process vLLM. Start with ``ponder.run(question)``.
"""

from ponder.api import arun, load_config, run
from ponder.backends import Backend, FakeBackend, OpenAICompatibleBackend
from ponder.config import ChainConfig
from ponder.errors import PonderError
from ponder.orchestrator import Orchestrator, RunResult, Trace
from ponder.strategies import ChainOfThought, Strategy, Task

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "ChainConfig",
    "ChainOfThought",
    "FakeBackend",
    "OpenAICompatibleBackend",
    "Orchestrator",
    "PonderError",
    "RunResult",
    "Strategy",
    "Task",
    "Trace",
    "arun",
    "load_config",
    "run",
]
