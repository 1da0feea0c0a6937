"""``ponder drr cv``: choose every sampling stop's threshold by grouped cross-validation on train.

Example (a sealed corpus plus the live directory still growing beside it; a question in both is
read once)::

    ponder drr cv --train data/behaviour/gsm8k-train-qwen05 \\
        --train ~/.cache/ponder/behaviour/gsm8k-train-more \\
        --folds 5 --margin 0.02 --out results/drr-cv

Writes ``cv.md`` (the chosen thresholds with their out-of-fold accuracy, paired won/lost and
costs against maj@k, the judges' out-of-fold AUROC and ECE, what each signal costs and buys,
every point), ``cv.json`` and ``chosen.json`` (``ponder.learning.drr.cv_report.ChosenStops``:
the thresholds a later test report takes as fixed inputs).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(drr: Any) -> None:
    v = drr.add_parser(
        "cv", help="choose each stop policy's threshold by grouped cross-validation on train"
    )
    v.add_argument("--train", action="append", required=True, help="train collection (repeatable)")
    v.add_argument("--folds", type=int, default=5, help="folds by question (default 5)")
    v.add_argument(
        "--margin",
        type=float,
        default=0.02,
        help="accuracy a chosen threshold may lose against maj@k, out-of-fold (default 0.02)",
    )
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--families", default="base", help="the DM with probes' families")
    v.add_argument(
        "--free-families",
        default="confidence,length",
        help="the probe-free DM's families (confidence, length)",
    )
    v.add_argument("--resamples", type=int, default=1000, help="AUROC bootstrap resamples")
    v.add_argument("--out", required=True, help="report directory (cv.md, cv.json, chosen.json)")
    v.set_defaults(handler=handle_cv)


def handle_cv(args: argparse.Namespace) -> int:
    from ponder.behaviour.records import read_collection
    from ponder.cli.common import say
    from ponder.learning.drr.costs import signal_costs
    from ponder.learning.drr.cv import cross_validate
    from ponder.learning.drr.cv_report import write_report
    from ponder.learning.drr.folds import pool_collections

    dirs = [str(Path(d).expanduser()) for d in args.train]
    manifest, records, dropped = pool_collections([read_collection(d) for d in dirs], say)
    header = [
        f"- train: {', '.join(dirs)} ({len(records)} questions"
        + (f"; {dropped} repeated ones read once" if dropped else "")
        + f"), seed {args.seed}"
    ]
    say(header[0][2:])
    run = cross_validate(
        manifest,
        records,
        folds=args.folds,
        seed=args.seed,
        families=args.families,
        free_families=args.free_families,
        progress=say,
    )
    every = int(manifest.settings.get("probe_every", 64))
    text, _ = write_report(
        args.out,
        run,
        margin=args.margin,
        train=dirs,
        seed=args.seed,
        resamples=args.resamples,
        signals=signal_costs(records, every),
        header=header,
    )
    print(text.split("\n## Every point")[0])
    print(f"\nwritten to {Path(args.out).expanduser()} (cv.md, cv.json, chosen.json)")
    return 0
