"""``ponder collect``: record the reasoner's behaviour on labelled questions (resumable).

One collection serves the DRR judge, the learned aggregator and SSA training (see
``ponder.learning``). ``ponder drr collect`` is the same command.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from ponder.cli.common import report, settings_from
from ponder.cli.scale_options import add_scale_arguments, on_cluster, placement, shard_of

DEFAULT_OUT = "~/.cache/ponder/behaviour"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="JSONL with question/answer (GSM8K format ok)")
    p.add_argument("--first", type=int, help="only the first N questions")
    p.add_argument("--out", help=f"collection directory (default {DEFAULT_OUT}/<dataset>-<N>)")
    p.add_argument("--config", "-c", help="chain file whose backend is the reasoner")
    p.add_argument("--model-file", help="GGUF of the reasoner, hashed into the manifest")
    p.add_argument("-k", type=int, default=8, help="samples per question (default 8)")
    p.add_argument("--max-tokens", type=int, default=320)
    p.add_argument("--probe-every", type=int, default=64, help="tokens between probes")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", action="store_true", help="also record the greedy trace")
    p.add_argument("--no-self-critique", action="store_true")
    p.add_argument("--questions-at-once", type=int, default=2)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_scale_arguments(p)


def register(sub: Any) -> None:
    p = sub.add_parser("collect", help="record the reasoner's behaviour on labelled questions")
    add_arguments(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from ponder.behaviour.datasets import load_items, select
    from ponder.config import ChainConfig
    from ponder.learning.collect.collector import (
        backend_model_info,
        build_manifest,
        collect,
        collection_output,
    )
    from ponder.learning.collect.strategy import BehaviourCollector
    from ponder.orchestrator.session import Session

    shard = shard_of(args)  # a bad --shard is said before anything is read
    items_all = load_items(args.dataset)
    items = select(items_all, args.first)
    cfg = ChainConfig.load(args.config) if args.config else ChainConfig()
    strategy = settings_from(BehaviourCollector, args, self_critique=not args.no_self_critique)
    # the reasoner the chain's backend serves (a named local model, a file, an endpoint)
    model = backend_model_info(cfg.backend, args.model_file)
    manifest = build_manifest(strategy, model, args.dataset, len(items_all), args.first)
    where = placement(args, per_actor=args.questions_at_once, model_file=args.model_file)
    suffix = f"-shard{shard.index}of{shard.count}" if shard is not None else ""
    default_out = f"{DEFAULT_OUT}/{Path(args.dataset).stem}-{len(items)}{suffix}"
    out = Path(args.out or default_out).expanduser()
    collection_output(out, manifest).check()  # another reasoner's collection: refused, no model
    if shard is not None:
        from ponder.scale.shard import write_shard_file

        write_shard_file(out, "collect", shard, manifest.model_dump(mode="json"))
        items = shard.select(items, lambda it: it.id)
    if where is not None:
        with on_cluster(where):
            summary = await collect(
                items,
                out,
                None,
                strategy,
                manifest,
                questions_at_once=args.questions_at_once,
                progress=not args.quiet,
                elsewhere=lambda work: where.remote(work, cfg),
            )
        return report(summary)
    async with Session.from_config(cfg) as session:
        summary = await collect(
            items,
            out,
            session,
            strategy,
            manifest,
            questions_at_once=args.questions_at_once,
            progress=not args.quiet,
        )
    return report(summary)
