"""``ponder drr report``: the held-out test report, every knob fixed on train (issue 30).

Use it after ``ponder drr cv`` has written ``chosen.json`` on the train questions; the test
questions only report::

    ponder drr report --train data/behaviour/gsm8k-train-qwen05 \\
        --train ~/.cache/ponder/behaviour/gsm8k-train-more \\
        --test data/behaviour/gsm8k-test-qwen05-plain \\
        --chosen results/drr-cv/chosen.json --out results/drr-report --subset-first 100

Writes ``report.md`` (printed), ``report.json``, ``reliability.png`` (unless ``--no-plots``) and
the artifacts trained on train (``dm.json``, ``dm-free.json``, ``learned.json``);
``ponder.learning.drr.test_report`` says what is computed and how.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(drr: Any) -> None:
    """Register ``report`` under ``ponder drr``."""
    r = drr.add_parser(
        "report", help="the held-out test report at the thresholds chosen on train (drr cv)"
    )
    r.add_argument("--train", action="append", required=True, help="train collection (repeatable)")
    r.add_argument("--test", required=True, help="test collection (held-out questions)")
    r.add_argument("--chosen", required=True, help="chosen.json written by `ponder drr cv`")
    r.add_argument("--out", required=True, help="report directory (report.md, report.json)")
    r.add_argument("--first", type=int, help="use only the first N test questions")
    r.add_argument(
        "--subset-first",
        type=int,
        metavar="N",
        help="also report every table on the first N test questions (e.g. 100)",
    )
    r.add_argument(
        "--learned-features",
        default="auto",
        help="the learned aggregator's features: auto (all when the test has probes and "
        "self-critique, else live), or as `ponder aggregate train --features`",
    )
    r.add_argument("--seed", type=int, help="training seed (default: chosen.json's)")
    r.add_argument("--resamples", type=int, default=1000, help="AUROC bootstrap resamples")
    r.add_argument("--allow-other-reasoner", action="store_true")
    r.add_argument("--no-plots", action="store_true")
    r.set_defaults(handler=handle)


def _dir(path: str, what: str) -> str:
    from ponder.errors import InputError

    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(f"{what} {p} is not a directory")
    return str(p)


def handle(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ponder.behaviour.records import read_collection
    from ponder.cli.common import say
    from ponder.errors import InputError
    from ponder.learning.drr.cv_choice import ChosenStops
    from ponder.learning.drr.folds import pool_collections
    from ponder.learning.drr.test_report import write_report
    from ponder.learning.drr.test_report_markdown import format_report
    from ponder.learning.drr.test_report_tables import held_out_report

    dirs = [_dir(d, "--train") for d in args.train]
    test = _dir(args.test, "--test")
    chosen_path = Path(args.chosen).expanduser()
    if not chosen_path.is_file():
        raise InputError(f"--chosen {chosen_path}: no such file (run `ponder drr cv` first)")
    try:
        chosen = ChosenStops.load(chosen_path)
    except ValidationError as exc:
        raise InputError(
            f"--chosen {chosen_path} is not a `ponder drr cv` chosen.json: {exc}"
        ) from None

    manifest, records, dropped = pool_collections([read_collection(d) for d in dirs], say)

    say(
        f"train: {', '.join(dirs)} ({len(records)} questions"
        + (f"; {dropped} repeated ones read once" if dropped else "")
        + f"); test: {test}; chosen: {chosen_path}"
    )
    held = held_out_report(
        (manifest, records),
        read_collection(test),
        chosen,
        args.out,
        names=(dirs, test, str(chosen_path)),
        first=args.first,
        subset_first=args.subset_first,
        seed=args.seed,
        resamples=args.resamples,
        learned_features=args.learned_features,
        plots=not args.no_plots,
        allow_other_reasoner=args.allow_other_reasoner,
        progress=say,
    )
    text = format_report(held.report)
    js, md = write_report(args.out, held.report, text)
    print(text)
    print(f"\nwritten to {md.parent} (report.md, report.json, the artifacts trained on train)")
    return 0
