"""``ponder ssa data | rft | train | grpo | export | plot``: train the SSA aggregator.

See docs/ssa.md. ``data``, ``rft`` and ``plot`` run in the main install; ``train``, ``grpo`` and
``export`` need torch, transformers and peft, which live in the train venv
(scripts/setup-train-venv.sh). Run from an environment without them, they re-run themselves with
the train venv's Python when it exists (``$PONDER_TRAIN_VENV``, default ``.venv-train`` beside
the package's checkout), and otherwise fail saying how to make it (``ponder.cli.ssa_train``).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from ponder.cli.common import report, settings_from
from ponder.cli.scale_options import add_scale_arguments, on_cluster, placement, shard_of
from ponder.cli.ssa_train import register_train_steps


def register(sub: Any) -> None:
    p = sub.add_parser("ssa", help="SSA aggregator training: data, rft targets, train, export")
    steps = p.add_subparsers(dest="ssa_command", required=True, metavar="STEP")
    d = steps.add_parser("data", help="SSA prompts (the inference format) from sample sets")
    d.add_argument("--collection", required=True, help="a `ponder collect` directory")
    d.add_argument("--out", required=True, help="JSONL to write (a .manifest.json goes beside)")
    d.add_argument(
        "-k",
        type=int,
        nargs="+",
        default=[5],
        help="candidates per set (default 5; several: a mix)",
    )
    d.add_argument("--subsets", type=int, default=4, help="sets drawn per question")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--max-candidate-tokens", type=int, default=384)
    d.add_argument("--majority-right-per-teaching", type=float, default=1.0)
    d.add_argument("--none-right-share", type=float, default=0.1)
    d.set_defaults(handler=handle_data)
    _register_rft(steps)
    register_train_steps(steps)
    c = steps.add_parser("plot", help="a train or grpo run's curve as a PNG (main install)")
    c.add_argument("--run", required=True, help="a `ponder ssa train` or `grpo` output dir")
    c.add_argument("--out", help="PNG to write (default RUN/curve.png)")
    c.add_argument("--window", type=int, default=8, help="steps in the moving average")
    c.set_defaults(handler=handle_plot)


def _register_rft(steps: Any) -> None:
    r = steps.add_parser(
        "rft", help="rejection-sampling targets: sample the aggregator, keep right"
    )
    r.add_argument("--data", required=True, help="the JSONL `ponder ssa data` wrote")
    r.add_argument("--out", required=True, help="targets JSONL (resumable; manifest beside)")
    r.add_argument("-c", "--config", help="chain file; its aggregator role (else backend) samples")
    r.add_argument("--model-file", help="GGUF behind the aggregator, hashed into the manifest")
    r.add_argument("-n", type=int, default=4, help="aggregator samples per example (default 4)")
    r.add_argument("--temperature", type=float, default=0.8)
    r.add_argument("--top-p", type=float, default=1.0)
    r.add_argument("--max-tokens", type=int, default=512)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--cap", type=int, default=2, help="correct targets kept per example")
    r.add_argument(
        "--fallback",
        choices=("candidate", "none"),
        default="candidate",
        help="when no sample is right: a target from a correct candidate (default) or none",
    )
    r.add_argument("--role", default="aggregator", help="backend role that samples")
    r.add_argument("--first", type=int, help="only the first N examples")
    r.add_argument("--examples-at-once", type=int, default=2)
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    add_scale_arguments(r, unit="examples")
    r.set_defaults(handler=handle_rft)


def handle_plot(args: argparse.Namespace) -> int:
    from ponder.learning.ssa.curve import plot_run

    print(f"wrote {plot_run(args.run, args.out, window=args.window)}")
    return 0


def handle_data(args: argparse.Namespace) -> int:
    from ponder.aggregator.ssa import SSA
    from ponder.learning.ssa.data import build_ssa_examples, write_ssa_examples

    examples, info = build_ssa_examples(
        args.collection,
        k=args.k,
        subsets=args.subsets,
        seed=args.seed,
        aggregator=SSA(max_candidate_tokens=args.max_candidate_tokens),
        majority_right_per_teaching=args.majority_right_per_teaching,
        none_right_share=args.none_right_share,
    )
    out = write_ssa_examples(examples, info, args.out)
    kept = ", ".join(f"{k} {v}" for k, v in sorted(info["kept"].items()))
    print(f"wrote {len(examples)} SSA examples to {out} ({kept}; available {info['available']})")
    return 0


# -- rft ------------------------------------------------------------------------------------------


def handle_rft(args: argparse.Namespace) -> int:
    return asyncio.run(_rft(args))


async def _rft(args: argparse.Namespace) -> int:
    from ponder.config import ChainConfig
    from ponder.learning.ssa.rft_run import (
        RFTSettings,
        build_rft_manifest,
        read_ssa_examples,
        rft_output,
        run_rft,
        summarize_rft,
        summary_text,
    )
    from ponder.orchestrator.session import Session

    shard = shard_of(args)  # a bad --shard is said before anything is read
    examples, data_manifest = read_ssa_examples(args.data)
    if args.first is not None:
        examples = examples[: args.first]
    cfg = ChainConfig.load(args.config) if args.config else ChainConfig()
    settings = settings_from(RFTSettings, args)
    backend_cfg = cfg.roles.get(args.role, cfg.backend)
    where = f"roles.{args.role}" if args.role in cfg.roles else "backend"
    model = backend_model_info(backend_cfg, args.model_file, where=where)
    manifest = build_rft_manifest(args.data, data_manifest, model, settings)
    rft_output(args.out, manifest).check()  # other settings or aggregator: refused, no model
    where = placement(
        args,
        per_actor=args.examples_at_once,
        model_file=args.model_file,
        model_role=args.role if args.role in cfg.roles else "default",
    )
    if shard is not None:
        from ponder.learning.ssa.rft_run import example_id
        from ponder.scale.shard import write_shard_file

        write_shard_file(args.out, "rft", shard, manifest)
        examples = shard.select(examples, example_id)
    if where is not None:
        with on_cluster(where):
            summary = await run_rft(
                examples,
                args.out,
                None,
                settings,
                manifest,
                examples_at_once=args.examples_at_once,
                progress=not args.quiet,
                elsewhere=lambda work: where.remote(work, cfg),
            )
        return report(summary, summary_text(summarize_rft(args.out)))
    async with Session.from_config(cfg) as session:
        summary = await run_rft(
            examples,
            args.out,
            session,
            settings,
            manifest,
            examples_at_once=args.examples_at_once,
            progress=not args.quiet,
        )
    return report(summary, summary_text(summarize_rft(args.out)))


def backend_model_info(
    backend: Any, model_file: str | None = None, *, where: str = "backend"
) -> Any:
    """Which model a backend config serves, for a manifest (the collector's
    ``backend_model_info``, imported only when a command needs it)."""
    from ponder.learning.collect.collector import backend_model_info as info

    return info(backend, model_file, where=where)
