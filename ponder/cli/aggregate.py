"""``ponder aggregate train``: fit the learned aggregator on a behaviour collection.

Example (train questions only; evaluate on another collection)::

    ponder aggregate train --collection ~/.cache/ponder/behaviour/gsm8k-train-48 \\
        --out models/learned-gsm8k.json [--features all|live|votes,confidence,...]

Then use it in a chain: ``aggregator: {name: learned, artifact: models/learned-gsm8k.json,
reasoner: default}``. ``--features live`` trains on what a ``sample`` chain provides (no probes,
no self-critique); ``--features all,hidden`` adds the reasoner's hidden states (the collection
needs its sidecar: ``ponder corpus hidden DIR``).
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("aggregate", help="train the learned aggregator")
    asub = p.add_subparsers(dest="aggregate_command", required=True, metavar="ACTION")
    t = asub.add_parser("train", help="fit a learned aggregator artifact on a behaviour collection")
    t.add_argument(
        "--collection",
        action="append",
        required=True,
        help="behaviour collection dir (ponder collect); repeatable: the questions of all",
    )
    t.add_argument("--out", required=True, help="artifact JSON to write")
    t.add_argument(
        "--features",
        default="all",
        help="feature families: all, live, or a list of votes,confidence,length,form,critique,"
        "probes,hidden (default all; hidden needs `ponder corpus hidden DIR`)",
    )
    t.set_defaults(handler=handle_train)


def handle_train(args: argparse.Namespace) -> int:
    from ponder.cli.train_data import read_train
    from ponder.learning.learned.train import train_artifact

    manifest, records, hidden, _ = read_train(args.collection, hidden="hidden" in args.features)
    art = train_artifact(manifest, records, args.features, hidden=hidden)
    path = art.save(args.out)
    t = art.training
    print(
        f"trained on {t['questions']} questions ({t['groups']} answer groups, "
        f"{t['right_groups']} right) of {manifest.model.name}; C={t['C']}; "
        f"cv pick accuracy {t['cv_pick_accuracy']:.1%} "
        f"(plurality {t['plurality_pick_accuracy']:.1%}, oracle {t['oracle']:.1%})"
    )
    print(f"artifact: {path} ({path.stat().st_size} bytes; features: {', '.join(art.families)})")
    return 0
