"""DRR by replay: train the DM on one collection, evaluate it and every stop policy on another.

Needs no model (the collections hold everything), a few minutes on a CPU::

    python benchmarks/drr_replay.py \\
        --train ~/.cache/ponder/behaviour/gsm8k-train-48 \\
        --test ~/.cache/ponder/behaviour/gsm8k-test-100 \\
        --out results/drr-replay

Prints (and writes to ``--out``: report.txt, report.json, dm.json, reliability.png,
sequential.png, parallel.png) the held-out judge table (DM vs mean token logprob vs
self-critique P(yes): AUROC and ECE), every policy's accuracy with its 95% Wilson interval and
paired won/lost against its baseline on the same questions and samples, mean generated tokens
(reasoning + the probe tokens a live policy spends), and the token saving of the cheapest stop
policy that reaches fixed maj@k's accuracy. The same as ``ponder drr evaluate --train --test``.
"""

from __future__ import annotations

import argparse
import sys

from ponder.cli import main as ponder_main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", required=True, help="train collection (ponder drr collect)")
    ap.add_argument("--test", required=True, help="test collection (held-out questions)")
    ap.add_argument("--out", required=True, help="report directory")
    ap.add_argument("--dm", help="use this DM instead of training one on --train")
    args = ap.parse_args()
    argv = ["drr", "evaluate", "--train", args.train, "--test", args.test, "--out", args.out]
    if args.dm:
        argv += ["--dm", args.dm]
    return ponder_main(argv)


if __name__ == "__main__":
    sys.exit(main())
