"""``ponder ssa data``: SSA training examples from a behaviour collection (train questions)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("ssa", help="SSA aggregator training: build data from a collection")
    steps = p.add_subparsers(dest="ssa_command", required=True, metavar="STEP")
    d = steps.add_parser("data", help="SSA prompts (the inference format) from sample sets")
    d.add_argument("--collection", required=True, help="a `ponder collect` directory")
    d.add_argument("--out", required=True, help="JSONL to write (a .manifest.json goes beside)")
    d.add_argument("-k", type=int, default=5, help="candidates per set (default 5)")
    d.add_argument("--subsets", type=int, default=4, help="sets drawn per question")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--max-candidate-tokens", type=int, default=384)
    d.add_argument("--majority-right-per-teaching", type=float, default=1.0)
    d.add_argument("--none-right-share", type=float, default=0.1)
    d.set_defaults(handler=handle_data)


def handle_data(args: argparse.Namespace) -> int:
    from ponder.aggregator.ssa import SSA
    from ponder.learning.ssa_data import build_ssa_examples, write_ssa_examples

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
