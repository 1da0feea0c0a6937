"""``ponder drr collect | train | evaluate``: DRR's three steps from the shell (docs/stopping.md).

- ``collect``: the behaviour collector (the same command as ``ponder collect``).
- ``train --data DIR --out FILE``: fit the DM on a collection; prints the grouped-CV summary.
- ``evaluate --dm FILE --test DIR --out DIR [--train DIR]``: held-out judge table and the replay
  of every stop policy with its baselines, plus the plots (``--train`` also calibrates the
  baselines on the train collection; with ``--train`` and no ``--dm`` the DM is trained first).
- ``ablate --train DIR --test DIR [--families ...] [--out DIR]``: each feature family's worth
  (train on train, AUROC on test with bootstrap intervals by question; ``learning/drr/ablate``);
  ``--cv K`` instead of ``--test``: out-of-fold on the train questions alone.
- ``cv --train DIR [--train DIR] --folds 5 --margin 0.02 --out DIR``: every sampling stop's
  threshold chosen by grouped cross-validation on train (``ponder.cli.drr_cv``).
- ``think-report --train DIR --test DIR --out DIR [--margin 0.05]``: stop-thinking policies on a
  thinking-format test collection, knobs chosen on train (``ponder.cli.drr_think``).
- ``report --train DIR --test DIR --chosen CV/chosen.json --out DIR``: the held-out test report
  at the thresholds ``cv`` chose on train (``ponder.cli.drr_report``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

DEFAULT_DM = "~/.cache/ponder/dm/dm.json"


def register(sub: Any) -> None:
    from ponder.cli import collect, drr_cv, drr_report

    p = sub.add_parser("drr", help="DRR: collect behaviour, train the judge (DM), evaluate stops")
    drr = p.add_subparsers(dest="drr_command", required=True, metavar="STEP")
    c = drr.add_parser("collect", help="record the reasoner's behaviour (= ponder collect)")
    collect.add_arguments(c)
    c.set_defaults(handler=collect.handle)

    t = drr.add_parser("train", help="train the DM on a behaviour collection")
    t.add_argument(
        "--data",
        action="append",
        required=True,
        help="collection directory (ponder drr collect); repeatable: the questions of all",
    )
    t.add_argument("--out", default=DEFAULT_DM, help=f"artifact path (default {DEFAULT_DM})")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--families",
        default=None,
        help="checkpoint feature families: base (votes,confidence,length; the default), all "
        "(+hidden), or a list of votes,confidence,length,thinking,hidden (thinking: the "
        "thinking's length and probe stability, for thinking-format collections; hidden needs "
        "`ponder corpus hidden DIR`), base,thinking for stop-thinking; with --no-probes: "
        "confidence,length (the default) or one of them",
    )
    t.add_argument(
        "--no-probes",
        action="store_true",
        help="a probe-free DM: judged on each trace's end as one call makes it (no probe "
        "answers), for drr_sample/drr_bayes with probes: false",
    )
    t.set_defaults(handler=handle_train)

    e = drr.add_parser("evaluate", help="replay every stop policy on a test collection")
    e.add_argument("--test", required=True, help="test collection directory")
    e.add_argument("--dm", help="DM artifact (default: train one from --train)")
    e.add_argument("--train", help="train collection (calibrates the baselines; trains the DM)")
    e.add_argument("--out", required=True, help="report directory (report.txt/json, PNGs)")
    e.add_argument("--allow-other-reasoner", action="store_true")
    e.add_argument("--no-plots", action="store_true")
    e.set_defaults(handler=handle_evaluate)

    a = drr.add_parser("ablate", help="each feature family's worth on held-out questions")
    a.add_argument(
        "--train",
        action="append",
        required=True,
        help="train collection directory (repeatable: pooled at the coarsest probe interval)",
    )
    a.add_argument("--test", help="test collection directory (or --cv K)")
    a.add_argument(
        "--cv", type=int, metavar="K", help="no test: out-of-fold on train, K folds by question"
    )
    a.add_argument(
        "--families",
        default="votes,confidence,length,hidden",
        help="families to ablate (hidden is skipped unless both collections have a sidecar)",
    )
    a.add_argument(
        "--test-first",
        type=int,
        metavar="N",
        help="only the test set's first N dataset questions (e.g. those with hidden states)",
    )
    a.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--no-learned", action="store_true", help="the DM only")
    a.add_argument("--out", help="also write ablation.md and ablation.json here")
    a.set_defaults(handler=handle_ablate)

    from ponder.cli import drr_think

    drr_think.add_parser(drr)
    drr_cv.add_parser(drr)
    drr_report.add_parser(drr)


def _cv_line(name: str, cv: dict[str, Any]) -> str:
    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    return (
        f"  {name}: {cv.get('rows')} rows ({cv.get('positives')} right), grouped {cv.get('folds')}"
        f"-fold CV AUROC logistic {f(cv.get('auroc_logistic'))}, gbt {f(cv.get('auroc_gbt'))}"
        f" -> {cv.get('chosen')}" + (f"\n    warning: {cv['note']}" if cv.get("note") else "")
    )


def handle_train(args: argparse.Namespace) -> int:
    from ponder.cli.train_data import read_train
    from ponder.learning.drr.train import resolve_dm_families, train_dm

    probes = not args.no_probes
    fams = resolve_dm_families(args.families if args.families or probes else "confidence,length")
    manifest, records, hidden, what = read_train(args.data, hidden="hidden" in fams)
    dm = train_dm(manifest, records, seed=args.seed, families=fams, hidden=hidden, probes=probes)
    path = dm.save(args.out)
    print(f"trained DM on {len(records)} questions of {what} -> {path}")
    print(f"  families: {', '.join(dm.feature_families)}" + ("" if probes else " (probe-free)"))
    print(_cv_line("checkpoint", dm.checkpoint.cv))
    if dm.sampling is not None:
        print(_cv_line("sampling", dm.sampling.cv))
    print(f"  size {path.stat().st_size / 1024:.1f} KiB")
    return 0


def handle_evaluate(args: argparse.Namespace) -> int:
    from ponder.behaviour.records import read_collection
    from ponder.errors import InputError
    from ponder.learning.drr.evaluate import evaluate
    from ponder.learning.drr.train import train_dm
    from ponder.stopping.model import DM, load_dm

    test_manifest, test_records = read_collection(Path(args.test).expanduser())
    train_records = None
    dm: DM
    if args.train:
        train_manifest, train_records = read_collection(Path(args.train).expanduser())
        if not args.allow_other_reasoner and not train_manifest.same_reasoner(test_manifest):
            raise InputError("--train and --test collections come from different reasoners")
        test_ids = {r.id for r in test_records}
        if train_manifest.dataset.sha256 == test_manifest.dataset.sha256 and test_ids & {
            r.id for r in train_records
        }:
            raise InputError("--train and --test share questions; split by question")
    if args.dm:
        dm = load_dm(args.dm)
    elif train_records is not None:
        dm = train_dm(train_manifest, train_records)
        dm.save(Path(args.out).expanduser() / "dm.json")
    else:
        raise InputError("give --dm FILE, or --train DIR to train one")
    from ponder.behaviour.hidden import read_hidden

    hidden = read_hidden(Path(args.test).expanduser()) if dm.needs_hidden else None
    report = evaluate(
        dm,
        test_manifest,
        test_records,
        args.out,
        train_records=train_records,
        allow_other_reasoner=args.allow_other_reasoner,
        plots=not args.no_plots,
        hidden=hidden,
    )
    print(report["text"])
    print(f"\nwritten to {Path(args.out).expanduser()}")
    return 0


def handle_ablate(args: argparse.Namespace) -> int:
    import json

    from ponder.behaviour.hidden import read_hidden
    from ponder.behaviour.records import first_in_dataset, read_collection
    from ponder.cli.train_data import read_train
    from ponder.errors import InputError
    from ponder.learning.drr.ablate import ablate, ablate_cv, format_ablation
    from ponder.learning.drr.folds import pool_collections
    from ponder.learning.drr.train import resolve_dm_families

    def load(d: str, first: int | None = None) -> Any:
        root = Path(d).expanduser()
        manifest, records, _ = pool_collections([read_collection(root)])  # each question once
        return manifest, first_in_dataset(list(records), first), read_hidden(root)

    if (args.test is None) == (args.cv is None):
        raise InputError("give --test DIR, or --cv K for out-of-fold numbers on train alone")
    manifest, records, states, _ = read_train(args.train, hidden=True)
    train = (manifest, records, states)
    test = load(args.test, args.test_first) if args.test else train
    fams = resolve_dm_families(args.families)
    opts = {"resamples": args.resamples, "seed": args.seed, "learned": not args.no_learned}
    if args.cv:
        rows = ablate_cv(train, fams, folds=args.cv, **opts)
    else:
        rows = ablate(train, test, fams, **opts)
    table = format_ablation(rows)
    print(table)
    if "hidden" in args.families and (train[2] is None or test[2] is None):
        print("(hidden left out: run `ponder corpus hidden` on both collections)")
    if args.out:
        out = Path(args.out).expanduser()
        out.mkdir(parents=True, exist_ok=True)
        (out / "ablation.md").write_text(table + "\n", encoding="utf-8")
        data = [r.to_dict() for r in rows]
        (out / "ablation.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 0
