"""``ponder collect``: record the reasoner's behaviour on labelled questions (resumable).

One collection serves the DRR judge, the learned aggregator and SSA training (see
``ponder.learning``). ``ponder drr collect`` is the same command. A chain whose backend serves the
thinking format (``{kind: local, thinking: true}``) collects thinking-format traces, the thinking
capped at ``--thinking-budget`` (else the chain's ``thinking_budget``, else ``--max-tokens``);
docs/reasoning.md, "Collecting in the thinking format".
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ponder.cli.common import report, settings_from
from ponder.cli.scale_options import add_scale_arguments, on_cluster, placement, shard_of

if TYPE_CHECKING:
    from ponder.config import ChainConfig

DEFAULT_OUT = "~/.cache/ponder/behaviour"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="JSONL with question/answer (GSM8K format ok)")
    p.add_argument("--first", type=int, help="only the first N questions")
    p.add_argument(
        "--skip",
        type=int,
        default=0,
        help="leave out the first N of those (grow a corpus in a second directory with other "
        "settings: --first 300 --skip 125 collects questions 126-300)",
    )
    p.add_argument("--out", help=f"collection directory (default {DEFAULT_OUT}/<dataset>-<N>)")
    p.add_argument("--config", "-c", help="chain file whose backend is the reasoner")
    p.add_argument("--model-file", help="GGUF of the reasoner, hashed into the manifest")
    p.add_argument("-k", type=int, default=8, help="samples per question (default 8)")
    p.add_argument("--max-tokens", type=int, default=320)
    p.add_argument(
        "--thinking-budget",
        type=int,
        help="thinking format: cap the thinking at N tokens, then force the answer (needs a "
        "chain whose backend has thinking: true; replaces --max-tokens)",
    )
    p.add_argument(
        "--answer-tokens",
        type=int,
        help="thinking format: the answer's allowance after the thinking (default: the chain's "
        "thinking.answer_tokens, 256)",
    )
    p.add_argument("--probe-every", type=int, default=64, help="tokens between probes")
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--greedy", action="store_true", help="also record the greedy trace")
    p.add_argument("--no-self-critique", action="store_true")
    p.add_argument("--questions-at-once", type=int, default=2)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_scale_arguments(p)


def thinking_settings(
    cfg: ChainConfig, budget: int | None, answer_tokens: int | None, max_tokens: int
) -> dict[str, Any]:
    """The collector's thinking settings for ``cfg``'s backend: none for a plain backend (a
    thinking option then is a ``ConfigError``); for one serving the thinking format, ``thinking``
    (its template, the answer's allowance) and ``max_tokens`` = the thinking's cap."""
    from ponder.config import LocalBackendConfig
    from ponder.errors import ConfigError
    from ponder.strategies.thinking_trace import ThinkingSettings

    backend = cfg.backend
    if not (isinstance(backend, LocalBackendConfig) and backend.thinking):
        if budget is not None or answer_tokens is not None:
            flag = "--thinking-budget" if budget is not None else "--answer-tokens"
            raise ConfigError(
                flag.lstrip("-").replace("-", "_"),
                f"{flag} collects in the thinking format: give a chain (-c) whose backend "
                "serves it (backend: {kind: local, thinking: true})",
            )
        return {}
    thinking = ThinkingSettings(
        answer_tokens=answer_tokens or cfg.thinking.answer_tokens,
        template=backend.thinking_template,
        answer_lead=cfg.thinking.answer_lead,
    )
    return {"thinking": thinking, "max_tokens": budget or cfg.thinking_budget or max_tokens}


def register(sub: Any) -> None:
    p = sub.add_parser("collect", help="record the reasoner's behaviour on labelled questions")
    add_arguments(p)
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    return asyncio.run(_run(args))


async def _run(args: argparse.Namespace) -> int:
    from ponder.behaviour.datasets import load_items, select
    from ponder.config import ChainConfig
    from ponder.errors import ConfigError
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
    if args.skip < 0:
        raise ConfigError("skip", f"--skip must be 0 or more, got {args.skip}")
    items = select(items_all, args.first)[args.skip :]
    cfg = ChainConfig.load(args.config) if args.config else ChainConfig()
    strategy = settings_from(
        BehaviourCollector,
        args,
        self_critique=not args.no_self_critique,
        **thinking_settings(cfg, args.thinking_budget, args.answer_tokens, args.max_tokens),
    )
    # the reasoner the chain's backend serves (a named local model, a file, an endpoint)
    model = backend_model_info(cfg.backend, args.model_file)
    manifest = build_manifest(
        strategy, model, args.dataset, len(items_all), args.first, skip=args.skip
    )
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
