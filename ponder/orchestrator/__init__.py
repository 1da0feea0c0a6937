"""The engine: runs strategy chains, owns budget, concurrency, retries, accounting and traces.

Use ``Session`` (also ``ponder.Session``): backends by role, started and closed once, shared by
many runs, each with its ``RunLimits``. ``Orchestrator`` is the one-run engine it extends.

The files, one job each: ``session.py`` (the Session), ``engine.py`` (Orchestrator.run),
``drive.py`` (stepping a flow, dispatching its actions), ``calls.py`` (making each call:
budget, retries, concurrency, usage, trace), ``policy.py`` (RunLimits, RetryPolicy),
``result.py`` (RunResult), ``budget.py``, ``usage.py``, ``trace.py``.
"""

from ponder.orchestrator.engine import Orchestrator
from ponder.orchestrator.policy import NO_RETRY, RetryPolicy, RunLimits
from ponder.orchestrator.result import RunResult
from ponder.orchestrator.session import Session
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
    "RunLimits",
    "RunResult",
    "SamplingParams",
    "Session",
    "Trace",
    "Usage",
    "read_trace",
]
