"""The high-level entry points: ``arun`` (async) and ``run`` (the one sync shim).

Use these when you want an answer from a chain without managing backends yourself::

    import ponder
    result = ponder.run("What is 17 * 23?")                       # embedded local model, CoT
    result = ponder.run(q, config="chain.yaml", trace="run.jsonl")
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ponder.backends.base import Backend
from ponder.config import ChainConfig
from ponder.orchestrator.result import RunResult
from ponder.orchestrator.trace import Trace, TraceNotWritten
from ponder.protocol.strategy import Strategy

ConfigLike = ChainConfig | Mapping[str, Any] | str | Path | None


def load_config(config: ConfigLike) -> ChainConfig:
    if config is None:
        return ChainConfig()
    if isinstance(config, ChainConfig):
        return config
    if isinstance(config, (str, Path)):
        return ChainConfig.load(config)
    return ChainConfig.from_dict(config)


async def arun(
    question: str,
    *,
    config: ConfigLike = None,
    strategy: Strategy | None = None,
    backends: Backend | Mapping[str, Backend] | None = None,
    trace: str | Path | None = None,
) -> RunResult:
    """Answer ``question`` with a chain. ``strategy``/``backends`` override the config's.

    With ``trace``, the run's trace is written there also when the run fails (then re-raised);
    a trace that cannot be written is a ``TraceNotWritten`` warning, never a lost answer."""
    cfg = load_config(config)
    if strategy is not None:
        cfg = cfg.model_copy(update={"strategy": strategy})
    given: dict[str, Backend] | None = None
    if isinstance(backends, Backend):
        given = {"default": backends}
    elif backends is not None:
        given = dict(backends)
    run_trace = Trace()
    try:
        async with cfg.session(given) as session:  # backends start here, outside the run's time
            result = await session.run(cfg.strategy, question, trace=run_trace)
    except BaseException:
        if trace is not None and run_trace.events:
            _write_trace(run_trace, trace)
        raise
    if trace is not None:
        _write_trace(result.trace, trace)
    return result


def _write_trace(run_trace: Trace, path: str | Path) -> None:
    """Write ``run_trace`` to ``path``; a failure is a ``TraceNotWritten`` warning, never the
    loss of the run's answer (or of its error)."""
    try:
        run_trace.write_jsonl(path)
    except OSError as exc:
        warnings.warn(
            f"the trace could not be written to {path}: {exc.strerror or exc}",
            TraceNotWritten,
            stacklevel=3,
        )


def run(question: str, **kwargs: Any) -> RunResult:
    """Synchronous ``arun``. Refuses to run inside an event loop (use ``await arun`` there)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(question, **kwargs))
    raise RuntimeError(
        "ponder.run() was called inside a running event loop; use `await ponder.arun(...)`"
    )
