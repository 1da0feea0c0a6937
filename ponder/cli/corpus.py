"""``ponder corpus seal | info | hidden``: keep a behaviour collection as chunks that never change,
and add the reasoner's hidden states to it.

Example (while ``ponder collect`` still appends to the cache directory)::

    ponder corpus seal ~/.cache/ponder/behaviour/gsm8k-train-300 \\
        --into data/behaviour/gsm8k-train-qwen05 --chunk 25
    ponder corpus info data/behaviour/gsm8k-train-qwen05

    ponder corpus hidden data/behaviour/gsm8k-train-qwen05            # PCA fitted here
    ponder corpus hidden ~/.cache/ponder/behaviour/gsm8k-test-100 \\
        --projection data/behaviour/gsm8k-train-qwen05                # the train projection

A sealed directory is an ordinary collection: ``ponder drr train --data DIR``, ``ponder
aggregate train --collection DIR`` and a resumed ``ponder collect --out DIR`` all read it.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "corpus", help="seal a behaviour collection into fixed chunks; summarize one"
    )
    csub = p.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    s = csub.add_parser("seal", help="write full chunks of new records as records-NNNN.jsonl.gz")
    s.add_argument("src", help="behaviour collection directory (ponder collect --out)")
    s.add_argument("--into", help="directory to seal into (default: SRC itself, in place)")
    s.add_argument("--chunk", type=int, default=25, help="records per chunk (default 25)")
    s.set_defaults(handler=handle_seal)
    i = csub.add_parser(
        "info", help="questions, samples, accuracy, reasoner and signal costs of a collection"
    )
    i.add_argument("dir", help="behaviour collection directory")
    i.set_defaults(handler=handle_info)
    h = csub.add_parser(
        "hidden",
        help="embed every sample with the reasoner (last-token hidden state), reduce, store",
    )
    h.add_argument("dir", help="behaviour collection directory")
    h.add_argument(
        "--projection",
        help="reuse this projection (a train collection's directory or hidden-projection.npz); "
        "default: fit one on DIR (or reuse DIR's)",
    )
    h.add_argument("--dims", type=int, default=64, help="probe dimensions (default 64)")
    h.add_argument("--method", choices=("pca", "random"), default="pca")
    h.add_argument("--refit", action="store_true", help="fit DIR's projection again")
    h.add_argument("--first", type=int, help="only the dataset's first N questions")
    h.add_argument("--model-file", help="the reasoner's GGUF (default: the default model)")
    h.add_argument("--runtime", default="auto", choices=("auto", "prebuilt", "native"))
    h.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    h.add_argument("--allow-other-reasoner", action="store_true")
    h.add_argument("--quiet", action="store_true", help="no progress bar")
    h.set_defaults(handler=handle_hidden)


def handle_seal(args: argparse.Namespace) -> int:
    from ponder.learning.collect.seal import seal

    print(seal(args.src, args.into, args.chunk).line())
    return 0


def handle_info(args: argparse.Namespace) -> int:
    from ponder.behaviour.records import read_collection, sealed_chunks

    manifest, records = read_collection(args.dir)
    samples = [s for r in records for s in r.samples]
    right = sum(1 for s in samples if s.correct)
    tokens = sum(s.tokens for s in samples)
    print(f"reasoner: {manifest.model.describe()}")
    print(f"dataset: {manifest.dataset.path} (first {manifest.dataset.first})")
    print(
        f"questions: {len(records)} ({len(sealed_chunks(args.dir))} sealed chunk(s)); "
        f"samples: {len(samples)}, right {right / max(len(samples), 1):.1%}; "
        f"generated tokens: {tokens} ({tokens / max(len(records), 1):.0f} a question)"
    )
    from ponder.learning.drr.costs import format_signal_costs, signal_costs

    costs = signal_costs(records, int(manifest.settings.get("probe_every", 64)))
    if costs:  # what each recorded signal cost (usage.by_purpose); what it buys: ponder drr cv
        print(format_signal_costs(costs, len(records)))
    return 0


def handle_hidden(args: argparse.Namespace) -> int:
    from ponder.learning.hidden import hidden_states

    report = hidden_states(
        args.dir,
        projection=args.projection,
        dims=args.dims,
        method=args.method,
        refit=args.refit,
        first=args.first,
        model_path=args.model_file,
        runtime=args.runtime,
        threads=args.threads,
        allow_other_reasoner=args.allow_other_reasoner,
        quiet=args.quiet,
    )
    print(report.line())
    return 0
