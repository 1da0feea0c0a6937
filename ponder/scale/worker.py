"""The Ray Data actor that runs a driver's items: one per worker, each with its own Session.

``RayPlacement`` (``ray_pool``) makes ``map_batches(ScaleWorker, ...)`` with a ``WorkerSpec``: the
chain (its backends are built in the actor: an endpoint by URL, or one embedded local model per
actor), the caller's ``ItemWork`` (``EvalItem``, ``CollectItem``, ``RFTItem``), the models the
run's manifest expects, the endpoint gates, and the secrets as an object ref. Before its first
item the actor reads the secrets into its own environment (where the backend configs'
``api_key_env`` names them), builds and starts its session, and checks the model it serves
(``model_check``); a mismatch answers every item with a fatal row, which stops the run.

Each call gets a batch of pickled items, runs them concurrently and yields result rows as they
finish (those done together in one block): ``key``, ``kind`` (``write``, ``failed`` or
``fatal``), ``line``, ``why``, ``usage`` (the pickled ``Usage``), ``node`` and ``pid``.
"""

from __future__ import annotations

import asyncio
import os
import pickle
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ponder.behaviour.records import ModelInfo
from ponder.config import ChainConfig
from ponder.errors import PonderError
from ponder.evaluation.driver import Failed, ItemWork, Write
from ponder.orchestrator.session import Session
from ponder.scale.gate import GatedBackend
from ponder.scale.model_check import check_served


@dataclass(frozen=True)
class WorkerSpec:
    """What every actor of one run is made with (pickled once by Ray; no secret in it)."""

    chain: ChainConfig
    work: ItemWork[Any]
    expected: dict[str, ModelInfo]
    model_file: str | None = None
    model_role: str = "default"
    secrets: list[Any] = field(default_factory=list)
    """``[ObjectRef]`` of ``{env var name: value}``, or empty: the ref (an id) is what Ray's
    dashboard and task specs show, never the values."""
    gates: Mapping[str, Any] = field(default_factory=dict)
    """Role -> ``EndpointGate`` actor handle, for roles served by a shared endpoint."""
    tally: Any = None
    """An ``InFlight`` actor handle the actor reports items started and finished to."""


class InFlight:
    """How many items run now across the cluster (a Ray actor; updates are not awaited)."""

    def __init__(self) -> None:
        self.n = 0

    def add(self, n: int) -> None:
        self.n += n

    def get(self) -> int:
        return self.n


class ScaleWorker:
    """The ``map_batches`` callable class (see the module doc)."""

    def __init__(self, spec: WorkerSpec) -> None:
        import ray

        self.spec = spec
        if spec.secrets:
            os.environ.update(ray.get(spec.secrets[0]))
        self.node = ray.get_runtime_context().get_node_id()
        self.pid = os.getpid()
        self._session: Session | None = None
        self._refusal: tuple[str, str] | None = None
        self._lock: asyncio.Lock | None = None

    async def _ready(self) -> Session | None:
        """The started session (made on the first call), or None when this worker refuses."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._session is None and self._refusal is None:
                spec = self.spec
                try:
                    await check_served(spec.chain, spec.expected, spec.model_file, spec.model_role)
                    backends = spec.chain.build_backends()
                    for role, gate in spec.gates.items():
                        backends[role] = GatedBackend(backends[role], gate)
                    chain = spec.chain
                    session = Session(
                        backends,
                        max_concurrency=chain.max_concurrency,
                        retry=chain.retry.policy(),
                        limits=chain.limits(),
                        tool_timeout_s=chain.tool_timeout_s,
                    )
                    self._session = await session.start()
                except PonderError as exc:
                    self._refusal = (type(exc).__name__, str(exc))
        return self._session

    async def __call__(self, batch: Mapping[str, Any]) -> AsyncIterator[dict[str, list[Any]]]:
        keys = [str(k) for k in batch["key"]]
        tally = self.spec.tally
        left = len(keys)
        if tally is not None:
            tally.add.remote(left)
        try:
            session = await self._ready()
            if session is None:
                assert self._refusal is not None
                yield self._rows([(k, "fatal", "", ":".join(self._refusal), b"") for k in keys])
                return
            tasks = {
                asyncio.ensure_future(self._one(session, k, blob))
                for k, blob in zip(keys, batch["blob"], strict=True)
            }
            while tasks:
                done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                rows = [t.result() for t in done]
                left -= len(rows)
                if tally is not None:
                    tally.add.remote(-len(rows))
                yield self._rows(rows)
        except BaseException:
            if tally is not None and left:  # this batch is retried: not in flight here now
                tally.add.remote(-left)
            raise

    async def _one(
        self, session: Session, key: str, blob: bytes
    ) -> tuple[str, str, str, str, bytes]:
        try:
            result = await self.spec.work(session, pickle.loads(blob))
        except PonderError as exc:  # what no rerun can fix (a rejected key): stops the run
            return key, "fatal", "", f"{type(exc).__name__}:{exc}", b""
        except Exception as exc:  # a bug on one item: that item is reported failed
            return key, "failed", "", f"{type(exc).__name__}: {exc}", b""
        if isinstance(result, Failed):
            return key, "failed", "", result.why, b""
        assert isinstance(result, Write)
        usage = pickle.dumps(result.usage) if result.usage is not None else b""
        return key, "write", result.line, "", usage

    def _rows(self, rows: list[tuple[str, str, str, str, bytes]]) -> dict[str, list[Any]]:
        return {
            "key": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "line": [r[2] for r in rows],
            "why": [r[3] for r in rows],
            "usage": [r[4] for r in rows],
            "node": [self.node] * len(rows),
            "pid": [self.pid] * len(rows),
        }
