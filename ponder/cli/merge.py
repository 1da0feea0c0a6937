"""``ponder merge OUT SHARD...``: put ``--shard i/n`` outputs back together
(``ponder.scale.merge``).

Example (four array tasks, then one merge)::

    ponder collect --dataset train.jsonl --shard $I/4 --out shards/$I    # I = 0..3
    ponder merge collection shards/0 shards/1 shards/2 shards/3
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("merge", help="merge the outputs of --shard i/n runs into one")
    p.add_argument("out", help="merged output (a directory; the targets file for ssa rft)")
    p.add_argument("shards", nargs="+", help="the shards' --out paths")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ponder.scale.merge import merge

    report = merge(args.out, args.shards)
    print(report.line())
    return 0
