"""``ponder drr think-report``: stop thinking where it pays, replayed on held-out questions.

Fixed thinking budgets, Dynasor's probe stop and the DM's stop-thinking on a thinking-format test
collection, every knob chosen on the train collection (``ponder.learning.drr.think_report``;
docs/reasoning.md, "Stopping thinking early").
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(drr: Any) -> None:
    """Register ``think-report`` under ``ponder drr``."""
    r = drr.add_parser(
        "think-report", help="stop-thinking policies on a thinking-format test collection"
    )
    r.add_argument("--train", required=True, help="train collection (knobs and the DM)")
    r.add_argument("--test", required=True, help="test collection (held-out questions)")
    r.add_argument("--out", required=True, help="report directory (think_report.md/json)")
    r.add_argument(
        "--margin",
        type=float,
        default=0.05,
        help="non-inferiority margin vs full thinking, in accuracy (default 0.05)",
    )
    r.add_argument(
        "--budgets",
        default="256,512",
        help="fixed thinking budgets to replay (default 256,512; those at the cap are left out)",
    )
    r.add_argument("--dm", help="a DM trained on --train (default: train one)")
    r.add_argument(
        "--families",
        default="base,thinking",
        help="the DM's feature families when it is trained here (default base,thinking)",
    )
    r.add_argument("--folds", type=int, default=5, help="cross-fitting folds on train")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples")
    r.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ponder.behaviour.records import read_collection
    from ponder.errors import InputError
    from ponder.learning.drr.think_report import think_report, write_report
    from ponder.learning.drr.train import resolve_dm_families
    from ponder.stopping.model import load_dm

    try:
        budgets = [int(b) for b in args.budgets.split(",") if b.strip()]
    except ValueError:
        raise InputError(
            f"--budgets is a comma-separated list of token counts, got {args.budgets!r}"
        ) from None
    train = read_collection(Path(args.train).expanduser())
    test = read_collection(Path(args.test).expanduser())
    report = think_report(
        train,
        test,
        margin=args.margin,
        budgets=budgets,
        families=resolve_dm_families(args.families),
        folds=args.folds,
        seed=args.seed,
        resamples=args.resamples,
        dm=load_dm(args.dm) if args.dm else None,
        names=(args.train, args.test),
    )
    md, js = write_report(report, args.out)
    print(report.markdown())
    print(f"written to {md} and {js}")
    return 0
