"""The engine: runs strategy chains, owns budget, concurrency, retries, accounting and traces."""

from ponder.orchestrator.engine import NO_RETRY, Orchestrator, RetryPolicy, RunResult
from ponder.orchestrator.trace import Trace, read_trace
from ponder.orchestrator.usage import Usage
from ponder.protocol.requests import (
    Choice,
    Completion,
    GenerationFailure,
    GenerationRequest,
    SamplingParams,
)

__all__ = [
    "NO_RETRY",
    "Choice",
    "Completion",
    "GenerationFailure",
    "GenerationRequest",
    "Orchestrator",
    "RetryPolicy",
    "RunResult",
    "SamplingParams",
    "Trace",
    "Usage",
    "read_trace",
]
