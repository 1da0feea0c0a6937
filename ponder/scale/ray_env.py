"""Ray, imported only when a command asks for it, and the cluster a run joins.

Use ``import_ray()`` instead of ``import ray`` (without the ``ponder[ray]`` extra it raises
``MissingExtraError`` saying what to install), and ``connect(address)`` to start or join a
cluster: ``None`` starts a local Ray in this process; ``auto``, ``HOST:PORT`` (a head node's GCS)
or ``ray://HOST:PORT`` (Ray Client) joins one. An address nothing answers at is an ``InputError``
naming it, after a short connection check (Ray itself would wait a minute or more).
"""

from __future__ import annotations

import logging
import socket
import warnings
from types import ModuleType
from urllib.parse import urlsplit

from ponder.errors import InputError, MissingExtraError

INSTALL = "pip install 'ponder[ray]'"
CONNECT_TIMEOUT_S = 3.0
ACTORS_START_S = 600
"""How long a run waits for all its actors to start before it hands out questions (else the
first actor up takes them all); past it the run fails saying the cluster lacks resources."""


def import_ray() -> ModuleType:
    """The ``ray`` module with Ray Data, or ``MissingExtraError`` naming the extra."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data])
    except ImportError as exc:
        raise MissingExtraError(
            f"--ray needs Ray Data, which is not installed: {INSTALL} ({exc})"
        ) from None
    return ray


def _host_port(address: str) -> tuple[str, int] | None:
    """The TCP endpoint an explicit address names (``HOST:PORT`` or ``ray://HOST:PORT``)."""
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        port = parts.port
    except ValueError:
        port = None
    if not parts.hostname or port is None:
        return None
    return parts.hostname, port


def check_reachable(address: str) -> None:
    """Refuse an address nothing answers at, quickly (see the module doc)."""
    if address == "auto":
        return
    hp = _host_port(address)
    if hp is None:
        raise InputError(
            f"--ray {address!r} is not a Ray address: give auto, HOST:PORT or ray://HOST:PORT"
        )
    try:
        with socket.create_connection(hp, timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise InputError(f"--ray {address}: no Ray cluster answers there ({exc})") from None


def connect(address: str | None, *, num_cpus: int | None = None) -> ModuleType:
    """Start (``address=None``) or join the cluster; Ray's progress output is turned off (the
    driver shows its own bar). Returns the ``ray`` module."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    if address is not None:
        check_reachable(address)
    warnings.filterwarnings("ignore", module=r"ray(\..*)?$")
    warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # the driver shows its own bar
    try:
        if address is None:
            ray.init(
                num_cpus=num_cpus,
                include_dashboard=False,
                logging_level=logging.WARNING,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    except (ConnectionError, TimeoutError) as exc:
        where = address or "a local Ray"
        raise InputError(f"--ray {where}: no Ray cluster could be joined ({exc})") from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.max_errored_blocks = -1  # a question that keeps failing is reported, not fatal
    ctx.wait_for_min_actors_s = ACTORS_START_S  # every actor gets work, not the first one up
    return ray


def shutdown() -> None:
    """Leave the cluster (stops it if this process started it); a no-op without Ray."""
    try:
        import ray
    except ImportError:
        return
    if ray.is_initialized():
        ray.shutdown()
