"""Run a resumable driver's items on a Ray cluster: a Ray Dataset through an actor pool.

Use ``RayPlacement(address, actors=N)`` where a command takes ``--ray [ADDRESS]``: the driver
(``ponder.evaluation.driver.drive``) hands it the item work of each run (``remote(work, chain)``)
and gets a ``RayRemote``, whose ``results(pending)`` makes the pending items a Ray Dataset
(``from_items``, one pickled item a row), maps it through ``ScaleWorker`` actors
(``map_batches`` with an ``ActorPoolStrategy`` of N actors, async, spread over the nodes) and
yields each result as it comes back. This process stays the only writer of the output, so the
files, the resume and the counts are exactly those of a run without Ray.

Resources: an actor that calls an endpoint reserves ``0.25`` CPU (it mostly waits); one that
embeds a local model reserves the model's threads (default 1, and the backend is given
``threads`` to match), so the models never share cores and Ray Data's own tasks keep some.

Faults: actors restart at most ``max_restarts`` times and a batch is retried at most
``max_task_retries`` times (Ray's defaults are unbounded); a batch that still fails is dropped by
Ray Data (``max_errored_blocks``); its items get one more pass, each alone on an actor (a
healthy question queued beside a poison one is not lost with it), and what is still missing comes
back as failed from the driver ("lost"), so a rerun redoes them; a batch retried after some of
its results arrived may send them again, and the driver writes each id once. Secrets travel as
an object ref (see ``WorkerSpec.secrets``).
Each endpoint is capped cluster-wide by its ``EndpointGate`` (``gate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pickle
import threading
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ponder.config import ChainConfig, LocalBackendConfig, OpenAIBackendConfig
from ponder.errors import ClusterError, PonderError
from ponder.evaluation.driver import Failed, ItemWork, Write
from ponder.learning.collect.collector import public_url
from ponder.orchestrator.usage import Usage
from ponder.scale import ray_env
from ponder.scale.gate import gate_for
from ponder.scale.model_check import expected_models, role_configs
from ponder.scale.worker import InFlight, ScaleWorker, WorkerSpec

LIGHT_CPUS = 0.25
"""CPUs an actor that only calls endpoints reserves."""
ENV_SHIPPED = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PONDER_MODEL", "OPENAI_MODEL")
"""Environment an OpenAI-compatible backend falls back to; shipped (by ref) with the keys."""
GATE_MARGIN_S = 30.0


@dataclass
class RayPlacement:
    """Where ``--ray`` runs items (see the module doc). ``per_actor``: items in flight per actor;
    ``endpoint_cap``: calls in flight per endpoint for the whole cluster (None: the endpoint's
    ``max_concurrency``; 0: no cap); ``model_file``/``model_role``: the ``--model-file`` the
    manifest hashed, rehashed by each worker."""

    address: str | None = None
    actors: int = 2
    per_actor: int = 4
    cpus_per_actor: float | None = None
    endpoint_cap: int | None = None
    model_file: str | None = None
    model_role: str = "default"
    max_restarts: int = 3
    max_task_retries: int = 2
    spread: bool = True
    remotes: list[RayRemote] = field(default_factory=list)

    def remote(self, work: ItemWork[Any], chain: ChainConfig) -> RayRemote:
        """The ``Remote`` that runs ``work`` with sessions of ``chain`` on the cluster."""
        ray = ray_env.connect(self.address)
        chain, cpus = _with_local_threads(chain, self.cpus_per_actor)
        spec = WorkerSpec(
            chain=chain,
            work=work,
            expected=expected_models(chain, self.model_file, self.model_role),
            model_file=self.model_file,
            model_role=self.model_role,
            secrets=_secret_ref(ray, chain),
            gates=self._gates(ray, chain),
            tally=ray.remote(num_cpus=0)(InFlight).remote(),
        )
        made = RayRemote(ray, spec, self, cpus)
        self.remotes.append(made)
        return made

    def _gates(self, ray: Any, chain: ChainConfig) -> dict[str, Any]:
        if self.endpoint_cap == 0:
            return {}
        gates = {}
        for role, cfg in role_configs(chain).items():
            if isinstance(cfg, OpenAIBackendConfig):
                url = (
                    cfg.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
                )
                cap = self.endpoint_cap or cfg.max_concurrency
                gates[role] = gate_for(
                    ray, public_url(url.rstrip("/")), cap, cfg.timeout_s + GATE_MARGIN_S
                )
        return gates

    def nodes(self) -> Counter[str]:
        """Items done per node, over every run this placement made."""
        total: Counter[str] = Counter()
        for r in self.remotes:
            total.update(r.nodes)
        return total

    def line(self) -> str:
        nodes = self.nodes()
        per = ", ".join(f"{n[:8]} {c}" for n, c in nodes.most_common())
        return f"ray: {sum(nodes.values())} item(s) on {len(nodes)} node(s) ({per})"


def _with_local_threads(chain: ChainConfig, cpus: float | None) -> tuple[ChainConfig, float]:
    """The chain with each embedded model given threads to match the CPUs its actor reserves."""
    local = {r: c for r, c in role_configs(chain).items() if isinstance(c, LocalBackendConfig)}
    if not local:
        return chain, cpus if cpus is not None else LIGHT_CPUS
    threads = {r: c.threads or max(1, int(cpus or 1)) for r, c in local.items()}
    update: dict[str, Any] = {}
    if "default" in local:
        update["backend"] = local["default"].model_copy(update={"threads": threads["default"]})
    roles = {
        r: c.model_copy(update={"threads": threads[r]}) if r in local else c
        for r, c in chain.roles.items()
    }
    if roles:
        update["roles"] = roles
    reserved = cpus if cpus is not None else float(sum(threads.values()))
    return chain.model_copy(update=update), reserved


def _secret_ref(ray: Any, chain: ChainConfig) -> list[Any]:
    """``[ObjectRef]`` of the environment the backends read their keys (and endpoint
    defaults) from, as set here; empty when there is none."""
    names: set[str] = set()
    for cfg in role_configs(chain).values():
        env = getattr(cfg, "api_key_env", None)
        if env:
            names.add(env)
        if isinstance(cfg, OpenAIBackendConfig):
            names.update(ENV_SHIPPED)
    values = {n: os.environ[n] for n in sorted(names) if n in os.environ}
    return [ray.put(values)] if values else []


class RayRemote:
    """One run's items on the cluster (see the module doc); ``nodes``/``pids``: items per node
    and per actor process, as they came back."""

    def __init__(self, ray: Any, spec: WorkerSpec, placement: RayPlacement, cpus: float) -> None:
        self.ray = ray
        self.spec = spec
        self.placement = placement
        self.cpus = cpus
        self.nodes: Counter[str] = Counter()
        self.pids: Counter[int] = Counter()
        self._in_flight = 0

    def in_flight(self) -> int:
        return self._in_flight

    def _dataset(self, pending: Mapping[str, Any], solo: bool = False) -> Any:
        ray, p = self.ray, self.placement
        calls = 2 if p.per_actor >= 2 and not solo else 1  # a second batch starts while one ends
        batch = 1 if solo else math.ceil(p.per_actor / calls)
        rows = [{"key": k, "blob": pickle.dumps(item)} for k, item in pending.items()]
        ds = ray.data.from_items(rows, override_num_blocks=math.ceil(len(rows) / batch))
        args: dict[str, Any] = {
            "max_restarts": p.max_restarts,
            "max_task_retries": p.max_task_retries,
        }
        if p.spread:
            args["scheduling_strategy"] = "SPREAD"
        return ds.map_batches(
            ScaleWorker,
            batch_size=batch,
            compute=ray.data.ActorPoolStrategy(
                size=max(1, p.actors),
                max_concurrent_calls_per_actor=calls,
                # one batch waits to start; solo: none, so a dying actor takes only its own
                max_tasks_in_flight_per_actor=1 if solo else 2 * calls,
            ),
            fn_constructor_kwargs={"spec": self.spec},
            num_cpus=self.cpus,
            **args,
        )

    async def results(
        self, pending: Mapping[str, Any]
    ) -> AsyncIterator[tuple[str, Write | Failed]]:
        """Each pending item's result as it comes back. Items whose batch was lost (its actor
        died, e.g. beside a question that kills its worker, until the retries ran out) get one
        more pass, each alone on an actor, so only an item that fails by itself is lost."""
        seen: set[str] = set()
        async for key, result in self._pass(pending, solo=False):
            seen.add(key)
            yield key, result
        lost = {k: v for k, v in pending.items() if k not in seen}
        if lost:
            async for key, result in self._pass(lost, solo=True):
                yield key, result

    async def _pass(
        self, pending: Mapping[str, Any], solo: bool
    ) -> AsyncIterator[tuple[str, Write | Failed]]:
        if not pending:
            return
        ds = self._dataset(pending, solo)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stop = threading.Event()

        def pump() -> None:  # Ray Data's iterator blocks: read it in a thread
            try:
                for row in ds.iter_rows():
                    loop.call_soon_threadsafe(queue.put_nowait, ("row", row))
                    if stop.is_set():
                        return
            except BaseException as exc:  # noqa: BLE001  (handed to the driver's loop)
                loop.call_soon_threadsafe(queue.put_nowait, ("error", exc))
            else:
                loop.call_soon_threadsafe(queue.put_nowait, ("end", None))

        threading.Thread(target=pump, name="ponder-ray-results", daemon=True).start()
        poll = asyncio.ensure_future(self._poll_in_flight())
        try:
            while True:
                kind, value = await queue.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise ClusterError(f"the Ray job failed: {type(value).__name__}: {value}")
                yield self._result(value)
        finally:
            stop.set()
            poll.cancel()
            self._in_flight = 0

    async def _poll_in_flight(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # the count is for the bar only
                self._in_flight = max(0, int(await self.spec.tally.get.remote()))
            await asyncio.sleep(0.5)

    def _result(self, row: Mapping[str, Any]) -> tuple[str, Write | Failed]:
        key, kind = str(row["key"]), str(row["kind"])
        self.nodes[str(row["node"])] += 1
        self.pids[int(row["pid"])] += 1
        if kind == "fatal":
            raise _rebuilt(str(row["why"]))
        if kind == "failed":
            return key, Failed(str(row["why"]))
        blob = row["usage"]
        usage: Usage | None = pickle.loads(blob) if blob else None
        return key, Write(str(row["line"]), usage)


def _rebuilt(why: str) -> PonderError:
    """The worker's ``Type:message`` as that ``ponder.errors`` type (message only), so the CLI
    answers as it would without Ray (exit 2 for a config error)."""
    import ponder.errors as errors

    name, _, message = why.partition(":")
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, PonderError)):
        return ClusterError(why)
    exc = cls.__new__(cls)
    PonderError.__init__(exc, message)
    return exc
