"""``ponder eval``: accuracy, tokens and wall time of chain configs on a dataset (or, with
``--offline``, of aggregators on pre-sampled solutions), resumable, with a summary table and a
test-time-scaling plot.

Examples::

    ponder eval --data ../shared/data/gsm8k/test.jsonl -n 40 \\
        -c greedy.yaml -c maj8.yaml --out results/gsm8k
    ponder eval --offline ../shared/data/aggregation/math_cot_100.jsonl \\
        --aggregator majority --aggregator best_of_n \\
        --aggregator '{"name": "weighted", "by": "score"}'
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from ponder.aggregator.registry import build_aggregator
from ponder.api import load_config
from ponder.behaviour.datasets import FORMATS, load_items, select
from ponder.cli.scale_options import add_scale_arguments, on_cluster, placement, shard_of
from ponder.config import ChainConfig
from ponder.errors import InputError
from ponder.evaluation.offline import NoModel, load_sample_sets, offline_jobs
from ponder.evaluation.runner import EvalJob, evaluate
from ponder.evaluation.summary import format_table


def register(sub: Any) -> None:
    p = sub.add_parser("eval", help="evaluate chain configs (or aggregators) on a dataset")
    p.add_argument(
        "--data",
        help="dataset JSONL (GSM8K, MATH-500, or any with --question-field/--answer-field)",
    )
    p.add_argument(
        "--format", choices=FORMATS, default="auto", help="dataset format (default: detect)"
    )
    p.add_argument("--question-field", help="field holding the question (generic JSONL)")
    p.add_argument("--answer-field", help="field holding the gold answer (generic JSONL)")
    p.add_argument(
        "-c",
        "--config",
        action="append",
        default=[],
        metavar="[NAME=]PATH",
        help="chain config to evaluate; repeat to compare (default: the default chain)",
    )
    p.add_argument("-n", "--limit", type=int, help="number of questions (default: all)")
    p.add_argument(
        "--sample-seed", type=int, help="draw --limit questions at random with this seed"
    )
    p.add_argument(
        "--concurrency", type=int, default=4, help="questions in flight at once (default 4)"
    )
    p.add_argument("--out", default="results/eval", help="output folder (default results/eval)")
    p.add_argument(
        "--plot", help="PNG path of the accuracy-vs-tokens plot (default OUT/scaling.png)"
    )
    p.add_argument("--no-plot", action="store_true", help="do not write the plot")
    p.add_argument(
        "--baseline",
        metavar="NAME",
        help="config (or aggregator label) the others are compared with, question by question "
        "(won/lost, exact McNemar p; default: the first)",
    )
    p.add_argument(
        "--traces", action="store_true", help="also write every run's trace to OUT/traces/"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--offline",
        metavar="PATH",
        help="sample-set JSONL (math_cot_100 format) or behaviour collection dir (ponder "
        "collect): run aggregators only, no sampling",
    )
    p.add_argument(
        "--aggregator",
        action="append",
        default=[],
        metavar="[LABEL=]SPEC",
        help="offline: aggregator name or JSON config; repeat to compare",
    )
    p.add_argument(
        "--aggregator-config", help="offline: chain config whose backends serve model aggregators"
    )
    add_scale_arguments(p)
    p.set_defaults(handler=handle)


def _named(spec: str) -> tuple[str | None, str]:
    if "=" in spec and not spec.lstrip().startswith("{"):
        name, _, rest = spec.partition("=")
        return name.strip(), rest.strip()
    return None, spec


def _online_jobs(args: argparse.Namespace) -> list[EvalJob]:
    specs = args.config or ["default="]
    jobs = []
    for spec in specs:
        name, path = _named(spec)
        chain = load_config(path) if path else ChainConfig.from_dict({})
        jobs.append(EvalJob(name or Path(path).stem, chain))
    _unique([j.name for j in jobs])
    return jobs


def _aggregators(args: argparse.Namespace) -> list[tuple[str, Any]]:
    out = []
    for i, spec in enumerate(args.aggregator or ["majority"]):
        label, body = _named(spec)
        try:
            data: Any = json.loads(body) if body.lstrip().startswith("{") else body
        except json.JSONDecodeError as exc:
            raise InputError(f"--aggregator {spec!r} is not valid JSON: {exc}") from None
        agg = build_aggregator(data, field=f"--aggregator[{i}]")
        out.append((label or agg.name, agg))
    _unique([label for label, _ in out])
    return out


def _unique(names: list[str]) -> None:
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise InputError(
            f"two runs would write the same output file: {', '.join(sorted(dup))}; "
            "name them NAME=..."
        )


def handle(args: argparse.Namespace) -> int:
    backends = None
    shard = shard_of(args)  # a bad --shard is said before anything is read
    if args.offline:
        items = load_sample_sets(args.offline)
        aggs = _aggregators(args)
        chain = (
            load_config(args.aggregator_config)
            if args.aggregator_config
            else ChainConfig.from_dict({})
        )
        jobs = offline_jobs(aggs, chain)
        if not any(a.roles() for _, a in aggs):
            backends = {"default": NoModel()}
    else:
        if not args.data:
            raise InputError("give --data PATH (or --offline PATH for aggregators on sample sets)")
        items = load_items(args.data, args.format, args.question_field, args.answer_field)
        jobs = _online_jobs(args)
    items = select(items, args.limit, args.sample_seed)
    where = placement(args, per_actor=args.concurrency)
    if (where is not None or shard is not None) and args.offline:
        raise InputError("--ray and --shard run chain configs; --offline runs no model")
    if where is not None and args.traces:
        raise InputError("--traces is not written with --ray (the traces stay on the workers)")
    if shard is not None:
        items = _shard(args, shard, jobs, items)
    with on_cluster(where):
        rows = asyncio.run(
            evaluate(
                jobs,
                items,
                args.out,
                concurrency=args.concurrency,
                progress=not args.no_progress,
                traces=args.traces,
                backends=backends,
                baseline=args.baseline,
                elsewhere=where.remote if where is not None else None,
            )
        )
    table = format_table(rows)
    print(table)
    Path(args.out, "summary.md").write_text(table + "\n")
    if len(rows) > 1 and not args.no_plot:
        from ponder.evaluation.plot import plot_scaling

        png = plot_scaling(rows, args.plot or Path(args.out) / "scaling.png")
        print(f"Plot: {png}")
    from ponder.evaluation.coverage import report_coverage

    coverage = report_coverage(args.out, rows, plot=not args.no_plot)
    if coverage:  # chains with a confidence: selective answering (docs/aggregation.md)
        print(f"\nCoverage vs accuracy (most confident answered first):\n{coverage}")
    print(f"Per-question records: {args.out}/<config>.jsonl")
    return 0


def _shard(args: argparse.Namespace, shard: Any, jobs: list[EvalJob], items: list[Any]) -> Any:
    """This shard's questions; ``OUT/shard.json`` records the shard and what the job runs."""
    from ponder.behaviour.records import file_sha256
    from ponder.scale.shard import write_shard_file

    manifest = {
        "configs": {j.name: j.chain.model_dump(mode="json") for j in jobs},
        "dataset": {"path": str(args.data), "sha256": file_sha256(args.data)},
        "limit": args.limit,
        "sample_seed": args.sample_seed,
        "baseline": args.baseline,
        "questions": len(items),
    }
    write_shard_file(args.out, "eval", shard, manifest)
    return shard.select(items, lambda it: it.id)
