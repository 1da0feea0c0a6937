"""The options that take ``ponder eval``, ``ponder collect`` and ``ponder ssa rft`` past one
machine: ``--ray [ADDRESS]`` (with ``--actors``, ``--per-actor``, ``--cpus-per-actor``,
``--endpoint-cap``) and ``--shard i/n``. See docs/scale.md and ``ponder.scale``."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

from ponder.errors import InputError


def add_scale_arguments(p: argparse.ArgumentParser, *, unit: str = "questions") -> None:
    g = p.add_argument_group("past one machine (docs/scale.md)")
    g.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help=f"run the {unit} on Ray (pip install 'ponder[ray]'): no ADDRESS starts a local Ray; "
        "auto, HOST:PORT or ray://HOST:PORT joins a cluster",
    )
    g.add_argument("--actors", type=int, default=2, help="--ray: worker actors (default 2)")
    g.add_argument(
        "--per-actor",
        type=int,
        help=f"--ray: {unit} in flight per actor (default: this command's own concurrency)",
    )
    g.add_argument(
        "--cpus-per-actor",
        type=float,
        help="--ray: CPUs each actor reserves (default 0.25 for endpoints; a local model's "
        "threads, 1 unless set)",
    )
    g.add_argument(
        "--endpoint-cap",
        type=int,
        help="--ray: calls in flight per endpoint for the whole cluster (default: the "
        "endpoint's max_concurrency; 0: no cap)",
    )
    g.add_argument(
        "--shard",
        metavar="I/N",
        help=f"run only shard I of N (from 0) of the {unit}, split by id; put shards "
        "together with `ponder merge`",
    )


def placement(
    args: argparse.Namespace,
    *,
    per_actor: int,
    model_file: str | None = None,
    model_role: str = "default",
) -> Any:
    """The ``RayPlacement`` ``--ray`` asks for (Ray imported now, so a missing extra is said at
    once), or None without ``--ray``."""
    if args.ray is None:
        return None
    from ponder.scale import ray_env
    from ponder.scale.ray_pool import RayPlacement

    ray_env.import_ray()
    if args.actors < 1:
        raise InputError(f"--actors must be at least 1 (got {args.actors})")
    if args.ray:
        ray_env.check_reachable(args.ray)
    return RayPlacement(
        address=args.ray or None,
        actors=args.actors,
        per_actor=max(1, args.per_actor or per_actor),
        cpus_per_actor=args.cpus_per_actor,
        endpoint_cap=args.endpoint_cap,
        model_file=model_file,
        model_role=model_role,
    )


def shard_of(args: argparse.Namespace) -> Any:
    """The ``Shard`` ``--shard`` names, or None."""
    if args.shard is None:
        return None
    from ponder.scale.shard import Shard

    return Shard.parse(args.shard)


@contextlib.contextmanager
def on_cluster(where: Any) -> Iterator[None]:
    """Leave the Ray cluster at the end (stopping a local one this run started); print where
    the items ran."""
    if where is None:
        yield
        return
    from ponder.scale import ray_env

    try:
        yield
        print(where.line())
    finally:
        ray_env.shutdown()
