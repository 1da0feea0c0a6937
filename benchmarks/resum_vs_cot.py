"""Plain CoT under a fixed context limit vs self-summarization checkpoints under the same limit.

Run by hand (slow on CPU); prints accuracy, total tokens and the largest single-call context per
strategy and data set, and writes one JSON line per run to ``--out``::

    python benchmarks/resum_vs_cot.py --gsm8k 50 --math 10 --limit 512 --max-summaries 3

CoT gets ``max_tokens = limit - prompt_tokens`` (the prompt measured with the server's tokenizer),
so its reasoning is cut at the limit. The summarizer gets ``checkpoint_tokens = limit``, which
bounds every one of its calls, summary calls included (``reserve_for_summary``; ``--no-reserve``
lets summary calls exceed it, as before 2026-11-23). The peak column proves the limit held.
MATH-500 "long-solution" problems are approximated by the intermediate-algebra and precalculus
subsets (the data set carries no solutions to measure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

from ponder.backends.local import LocalBackend
from ponder.grading import gold_from_gsm8k, is_equivalent
from ponder.orchestrator import Orchestrator
from ponder.protocol.requests import GenerationRequest
from ponder.strategies import ChainOfThought, SummarizingReasoner, Task
from ponder.strategies.cot import cot_messages

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
LONG_MATH = ("intermediate_algebra", "precalculus")


def load(gsm8k: int, math: int) -> list[tuple[str, str, str]]:
    items: list[tuple[str, str, str]] = []
    with (DATA / "gsm8k" / "test.jsonl").open() as f:
        for line in f:
            if len([i for i in items if i[0] == "gsm8k"]) >= gsm8k:
                break
            row = json.loads(line)
            items.append(("gsm8k", row["question"], gold_from_gsm8k(row["answer"])))
    n = 0
    with (DATA / "math500" / "test.jsonl").open() as f:
        for line in f:
            row = json.loads(line)
            if n < math and any(s in row["id"] for s in LONG_MATH):
                items.append(("math500", row["problem"], row["answer"]))
                n += 1
    return items


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gsm8k", type=int, default=50)
    ap.add_argument("--math", type=int, default=10)
    ap.add_argument("--limit", type=int, default=512, help="working-context limit (tokens)")
    ap.add_argument("--max-summaries", type=int, default=3)
    ap.add_argument("--summary-max-tokens", type=int, default=160)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--no-reserve", action="store_true", help="let summary calls exceed the limit")
    ap.add_argument("--request-timeout", type=float, default=3600.0)
    ap.add_argument("--threads", type=int, default=None, help="llama-server threads")
    ap.add_argument("--out", default="results/resum_vs_cot.jsonl")
    ap.add_argument(
        "--report-only", action="store_true", help="print the table from the rows in --out"
    )
    args = ap.parse_args()
    if args.report_only:
        lines = Path(args.out).read_text().splitlines()
        report([json.loads(line) for line in lines if line.strip()], args)
        return

    items = load(args.gsm8k, args.math)
    backend = LocalBackend(
        quiet=True,
        n_parallel=args.parallel,
        ctx_per_slot=4096,
        threads=args.threads,
        timeout_s=args.request_timeout,
    )
    await backend.start()
    orch = Orchestrator(backend, max_concurrency=args.parallel)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summarizer = SummarizingReasoner(
        checkpoint_tokens=args.limit,
        max_summaries=args.max_summaries,
        summary_max_tokens=args.summary_max_tokens,
        reserve_for_summary=not args.no_reserve,
    )
    sem = asyncio.Semaphore(args.parallel)
    rows: list[dict[str, object]] = []

    async def one(kind: str, dataset: str, question: str, gold: str) -> None:
        async with sem:
            if kind == "cot":
                req = GenerationRequest(
                    messages=cot_messages(Task(question), "cot_system", "cot_user")
                )
                prompt = await backend.count_prompt_tokens(req)
                strategy: ChainOfThought | SummarizingReasoner = ChainOfThought(
                    max_tokens=max(16, args.limit - prompt)
                )
            else:
                strategy = summarizer
            t0 = time.perf_counter()
            r = await orch.run(strategy, question)
            row = {
                "strategy": kind,
                "dataset": dataset,
                "question": question[:80],
                "gold": gold,
                "answer": r.answer,
                "correct": is_equivalent(r.answer, gold),
                "total_tokens": r.usage.total_tokens,
                "completion_tokens": r.usage.completion_tokens,
                "peak_context": r.usage.peak_context_tokens,
                "calls": r.usage.calls,
                "summaries": len(r.outcome.data.get("summaries", [])),
                "stop_reason": r.outcome.data.get(
                    "stop_reason", r.outcome.data.get("finish_reason")
                ),
                "wall_s": round(time.perf_counter() - t0, 1),
            }
            rows.append(row)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), file=sys.stderr, flush=True)

    try:
        await asyncio.gather(*(one(k, d, q, g) for d, q, g in items for k in ("cot", "summarize")))
    finally:
        await backend.aclose()
    report(rows, args)


def report(rows: list[dict[str, object]], args: argparse.Namespace) -> None:
    print(
        f"limit={args.limit} max_summaries={args.max_summaries} "
        f"summary_max_tokens={args.summary_max_tokens}"
    )
    print(
        f"{'dataset':9} {'strategy':10} {'n':>3} {'acc':>6} {'tot_tok':>8} {'med_tok':>8} "
        f"{'compl':>7} {'peak_ctx':>8} {'med_peak':>8} {'summ':>5}"
    )
    for dataset in ("gsm8k", "math500"):
        for kind in ("cot", "summarize"):
            rs = [r for r in rows if r["dataset"] == dataset and r["strategy"] == kind]
            if not rs:
                continue
            acc = sum(bool(r["correct"]) for r in rs) / len(rs)
            tot = sum(int(r["total_tokens"]) for r in rs)  # type: ignore[call-overload]
            med = statistics.median(int(r["total_tokens"]) for r in rs)  # type: ignore[call-overload]
            comp = sum(int(r["completion_tokens"]) for r in rs)  # type: ignore[call-overload]
            peak = max(int(r["peak_context"]) for r in rs)  # type: ignore[call-overload]
            mpk = statistics.median(int(r["peak_context"]) for r in rs)  # type: ignore[call-overload]
            sm = sum(int(r["summaries"]) for r in rs)  # type: ignore[call-overload]
            print(
                f"{dataset:9} {kind:10} {len(rs):>3} {acc:>6.2f} {tot:>8} {med:>8.0f} "
                f"{comp:>7} {peak:>8} {mpk:>8.0f} {sm:>5}"
            )


if __name__ == "__main__":
    asyncio.run(main())
