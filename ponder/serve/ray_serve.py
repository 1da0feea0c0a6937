"""``ponder serve`` as a Ray Serve deployment: the same FastAPI app, run as N replicas.

Use it to run the proxy on a Ray cluster (or to get N replicas on one machine) without a load
balancer of your own: Ray's HTTP proxy spreads requests over the replicas. Needs the optional
extra (``pip install 'ponder[ray]'``). From the command line::

    ponder serve -c serve.yaml --ray-serve --replicas 2            # a local Ray
    RAY_ADDRESS=auto ponder serve -c serve.yaml --ray-serve --replicas 8   # join a cluster

From Python::

    from ray import serve
    from ponder.serve.ray_serve import deployment
    serve.run(deployment("serve.yaml", replicas=2), name="ponder", route_prefix="/")

Each replica is one Ray actor that builds the app itself (``create_app``, the config validated
once on the driver and shipped to the replicas), runs its lifespan (backends started, chains
checked, drained at shutdown) and names itself after Ray's replica id (``$PONDER_REPLICA``): the
``replica`` label of its metrics, its ``trace_dir`` subfolder and the ``x-ponder-replica`` header
of its answers. What is per replica (limits, metrics, traces, backends) is in ``replica.py``;
secrets stay env vars on the nodes (``api_key_env``), never in Ray's job specs.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from ponder.config import LocalBackendConfig
from ponder.errors import ConfigError, MissingExtraError
from ponder.serve.app import create_app
from ponder.serve.config import ServeConfig
from ponder.serve.runner import ANSWER_AFTER_DRAIN_S
from ponder.serve.telemetry import REPLICA_ENV, configure_tracing, explicit_replica

APP_NAME = "ponder"
INSTALL_HINT = "Ray Serve is not installed: pip install 'ponder[ray]'"

ConfigLike = ServeConfig | Mapping[str, Any] | str | Path


def ray_serve() -> Any:
    """The ``ray.serve`` module, or a ``MissingExtraError`` naming the extra to install."""
    try:
        from ray import serve
    except ImportError as exc:
        raise MissingExtraError(f"{INSTALL_HINT} ({exc})") from exc
    return serve


def load(config: ConfigLike) -> ServeConfig:
    if isinstance(config, ServeConfig):
        return config
    if isinstance(config, (str, Path)):
        return ServeConfig.load(config)
    return ServeConfig.from_dict(config)


class PonderReplica:
    """One replica of the proxy (the class Ray Serve wraps with the app, ``deployment``)."""

    app: FastAPI  # set by Ray Serve's ingress wrapper

    def check_health(self) -> None:
        """Ray Serve's health check: a replica whose backends did not start (or whose chains
        were refused) is unhealthy, so Ray replaces it."""
        state = getattr(getattr(self, "app", None), "state", None)
        if state is not None and state.readiness() == "failed":
            raise RuntimeError("ponder serve: this replica's backends did not start; see its log")


def deployment(
    config: ConfigLike,
    *,
    replicas: int = 1,
    num_cpus: float = 0.5,
    name: str = APP_NAME,
) -> Any:
    """A Ray Serve application (``Deployment.bind()``) serving ``config`` with ``replicas``
    replicas, each reserving ``num_cpus`` CPUs (the proxy waits on its upstream; fractional
    CPUs leave room for Ray's own actors). Each replica admits ``limits.max_concurrent_runs``
    requests at once (Ray's ``max_ongoing_requests``; more wait in Ray's queue)."""
    serve = ray_serve()
    cfg = load(config)
    if replicas < 1:
        raise ConfigError("replicas", f"must be at least 1, got {replicas}")
    if isinstance(cfg.upstream, LocalBackendConfig) and replicas > 1:
        warnings.warn(
            f"a local upstream starts one llama-server per replica ({replicas}); at scale "
            "point the replicas at one endpoint (upstream: {kind: openai, base_url: ...})",
            stacklevel=2,
        )
    ingress = serve.ingress(_app_builder(cfg))(type("PonderProxy", (PonderReplica,), {}))
    return serve.deployment(
        ingress,
        name=name,
        num_replicas=replicas,
        ray_actor_options={"num_cpus": num_cpus},
        max_ongoing_requests=cfg.limits.max_concurrent_runs,
        graceful_shutdown_timeout_s=cfg.shutdown_grace_s + ANSWER_AFTER_DRAIN_S,
    ).bind()


def _app_builder(cfg: ServeConfig) -> Callable[[], FastAPI]:
    """What each replica calls (in its own process) to build its app."""

    def build() -> FastAPI:
        os.environ[REPLICA_ENV] = _replica_name(explicit_replica(cfg.telemetry))
        configure_tracing(os.environ[REPLICA_ENV])
        return create_app(cfg)

    return build


def _replica_name(base: str | None) -> str:
    """``<base>-<Ray's replica id>`` (or the id alone): unique per replica, a valid name."""
    from ray import serve

    ctx = serve.get_replica_context()
    rid = getattr(getattr(ctx, "replica_id", None), "unique_id", None) or ctx.replica_tag
    rid = "".join(c if c.isalnum() or c in "_.:-" else "-" for c in str(rid))[-40:]
    return f"{base}-{rid}"[:64] if base else rid


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """A ``ConfigError`` naming ``address`` unless its ``host:port`` accepts a connection
    (``auto`` and ``local`` are left to Ray, which answers those at once)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError("--ray-address", f"{address!r} is not auto, host:port or ray://host:port")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise ConfigError("--ray-address", f"cannot reach Ray at {address}: {exc}") from None


def run(config: ServeConfig, *, replicas: int, address: str | None = None) -> None:
    """``ponder serve --ray-serve``: join Ray at ``address`` (or ``$RAY_ADDRESS``; ``auto``,
    ``ray://host:port``) or start a local Ray, serve ``config`` on ``host:port`` through Ray's
    HTTP proxy with ``replicas`` replicas until SIGINT/SIGTERM; then remove the app (and stop
    the Ray this call started)."""
    serve = ray_serve()
    import ray

    joined = address or os.environ.get("RAY_ADDRESS") or None
    if joined:
        check_reachable(joined)  # ray.init would retry an unreachable address for minutes
    try:  # "local": a Ray of our own, never one another job left running on this machine
        ray.init(address=joined or "local", include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ConfigError("--ray-address", f"cannot reach Ray at {joined!r}: {exc}") from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": config.host, "port": config.port})
        serve.run(deployment(config, replicas=replicas), name=APP_NAME, route_prefix="/")
        print(
            f"ponder serve: http://{config.host}:{config.port}/v1  chains: "
            + ", ".join("ponder:" + c for c in config.chain_names())
            + f"  ({replicas} replica(s) on Ray Serve, ready)",
            flush=True,
        )
        stop.wait()
    finally:
        if joined:
            serve.delete(APP_NAME)
        else:
            serve.shutdown()
            ray.shutdown()
