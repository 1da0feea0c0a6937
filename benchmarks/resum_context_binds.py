"""Summarize where the context binds: thinking cut at the window vs summarize-and-continue.

Use it to measure ReSum checkpoints (``summarize`` with ``thinking: true``) where the thinking is
longer than the context one call may hold (issue 28). The embedded model serves the thinking
format (``LocalBackend(thinking=True)``), greedy, on the same GSM8K test questions for every arm:

- ``cut``: plain thinking cut at the window: ``cot`` with ``max_tokens`` = window - its exact prompt
  (the format's system prompt and ``<think>`` prefill included) - 8, under a thinking budget of
  that minus the answer allowance; budget forcing closes the thinking and the model answers.
- ``resum<T>`` for each ``--budgets T``: ``summarize`` with ``thinking: true``,
  ``checkpoint_tokens`` = window (every call, summaries and the answer included),
  ``thinking_tokens`` = T over all windows, the same answer allowance.

Per arm it prints accuracy with a 95% Wilson interval, won/lost against ``cut`` on the same
questions with McNemar's exact p, the mean thinking / completion / prompt tokens, calls and wall
seconds per question, and the peak context of any call (max and median: proof the window held).
One JSON line per (question, arm) goes to ``--out`` as it finishes; a rerun with the same
``--out`` and settings skips what is there, so an interrupted run resumes (``--only ARM`` measures
some arms). Slow on CPU: run it niced. On a busy 2-core machine llama-server with one thread
decoded ~12 tokens/s and with two threads 0.6 (its threads wait for each other when one is not
scheduled), hence ``--threads 1``; ``--parallel`` slots decode together::

    nice -n 15 python benchmarks/resum_context_binds.py --first 50 --offset 100 \\
        --window 1024 --budgets 2048 4096 --parallel 2 --out results/resum_binds_w1024.jsonl
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ponder.backends.local import LocalBackend
from ponder.backends.thinking_format import answer_lead_text
from ponder.behaviour.stats import accuracy_text, paired
from ponder.grading import gold_from_gsm8k, is_equivalent
from ponder.orchestrator import Orchestrator
from ponder.orchestrator.policy import RunLimits
from ponder.protocol.requests import GenerationRequest
from ponder.protocol.thinking_budget import ThinkingBudget
from ponder.strategies import ChainOfThought, SummarizingReasoner, Task
from ponder.strategies.cot import cot_messages

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SLACK = 8  # the closing marker between the thinking and the answer


def load(path: Path, offset: int, first: int) -> list[tuple[int, str, str]]:
    """(index in the file, question, gold) of questions ``offset`` .. ``offset + first - 1``."""
    rows: list[tuple[int, str, str]] = []
    with path.open() as f:
        for i, line in enumerate(f):
            if i >= offset + first:
                break
            if i >= offset:
                row = json.loads(line)
                rows.append((i, row["question"], gold_from_gsm8k(row["answer"])))
    return rows


def settings(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("window", "answer_tokens", "summary_max_tokens", "max_summaries", "min_window_tokens")
    return {**{k: getattr(args, k) for k in keys}, "answer_lead": lead_name(args)}


def lead_name(args: argparse.Namespace) -> str | None:
    """The answer lead both arms write after the closed thinking (``none``: none)."""
    return None if args.answer_lead == "none" else str(args.answer_lead)


async def run_one(
    backend: LocalBackend,
    orch: Orchestrator,
    arm: str,
    index: int,
    question: str,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """One question under one arm: the row written to ``--out`` (without its keys)."""
    limits = None
    if arm == "cut":
        req = GenerationRequest(messages=cot_messages(Task(question), "cot_system", "cot_user"))
        prompt = await backend.count_prompt_tokens(req)
        max_tokens = max(2 * SLACK, args.window - prompt - SLACK)
        think = max(1, max_tokens - args.answer_tokens)
        lead = answer_lead_text(lead_name(args))
        limits = RunLimits(
            thinking=ThinkingBudget(think, answer_tokens=args.answer_tokens, answer_lead=lead)
        )
        strategy: ChainOfThought | SummarizingReasoner = ChainOfThought(max_tokens=max_tokens)
    else:
        strategy = SummarizingReasoner(
            thinking=True,
            checkpoint_tokens=args.window,
            thinking_tokens=int(arm.removeprefix("resum")),
            answer_tokens=args.answer_tokens,
            answer_lead=lead_name(args),
            summary_max_tokens=args.summary_max_tokens,
            max_summaries=args.max_summaries,
            min_window_tokens=args.min_window_tokens,
        )
    t0 = time.perf_counter()
    r = await orch.run(strategy, question, limits=limits)
    if args.traces:
        r.trace.write_jsonl(Path(args.traces) / f"{arm}-{index}.jsonl")
    data = r.outcome.data
    if arm == "cut":
        stop = "cut" if data.get("thinking_cut") else "ended"
    else:
        stop = str(data.get("stop_reason"))
    return {
        "answer": r.answer,
        "thinking_tokens": int(data.get("reasoning_tokens") or r.usage.reasoning_tokens),
        "completion_tokens": r.usage.completion_tokens,
        "prompt_tokens": r.usage.prompt_tokens,
        "calls": r.usage.calls,
        "peak_context": r.usage.peak_context_tokens,
        "summaries": len(data.get("summaries", [])),
        "stop": stop,
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def read_rows(out: Path, want: dict[str, Any]) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    rows = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    other = [r for r in rows if r.get("settings") != want]
    if other:
        sys.exit(
            f"{out} holds rows of other settings ({other[0].get('settings')}); use another --out"
        )
    return rows


async def measure(args: argparse.Namespace, arms: list[str], out: Path) -> None:
    questions = load(Path(args.data), args.offset, args.first)
    done = {(r["index"], r["arm"]) for r in read_rows(out, settings(args))}
    jobs = [(i, q, g, arm) for i, q, g in questions for arm in arms if (i, arm) not in done]
    if not jobs:
        return
    backend = LocalBackend(
        quiet=True,
        thinking=True,
        n_parallel=args.parallel,
        ctx_per_slot=max(2048, args.window + 512),
        threads=args.threads,
        timeout_s=args.request_timeout,
    )
    await backend.start()
    orch = Orchestrator(backend, max_concurrency=args.parallel)
    sem = asyncio.Semaphore(args.parallel)
    bar = tqdm(total=len(jobs), desc="question x arm", file=sys.stderr, dynamic_ncols=True)

    async def one(index: int, question: str, gold: str, arm: str) -> None:
        async with sem:
            row = await run_one(backend, orch, arm, index, question, args)
        row = {"index": index, "arm": arm, "gold": gold, **row, "settings": settings(args)}
        row["correct"] = is_equivalent(row["answer"], gold)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        bar.update(1)
        bar.set_postfix_str(f"q{index} {arm}: {'right' if row['correct'] else 'wrong'}")

    try:
        await asyncio.gather(*(one(*job) for job in jobs))
    finally:
        bar.close()
        await backend.aclose()


def report(rows: list[dict[str, Any]], arms: list[str], window: int) -> None:
    by_arm = {arm: {r["index"]: r for r in rows if r["arm"] == arm} for arm in arms}
    base = by_arm.get("cut", {})
    print(f"window {window} tokens; {len(base)} questions under 'cut'")
    head = (
        f"{'arm':10} {'n':>3} {'accuracy [95% CI]':>22} {'vs cut':>16} {'think':>6} "
        f"{'compl':>6} {'prompt':>7} {'calls':>5} {'wall_s':>7} {'peak max/med':>12} stops"
    )
    print(head)
    for arm in arms:
        rs = by_arm[arm]
        if not rs:
            continue
        vals = list(rs.values())
        common = sorted(set(rs) & set(base))
        vs = ""
        if arm != "cut":
            wins = paired([rs[i]["correct"] for i in common], [base[i]["correct"] for i in common])
            vs = wins.text()

        def mean(key: str, vals: list[dict[str, Any]] = vals) -> float:
            return statistics.fmean(float(v[key]) for v in vals)

        peaks = [int(v["peak_context"]) for v in vals]
        counts = {s: sum(v["stop"] == s for v in vals) for s in sorted({v["stop"] for v in vals})}
        print(
            f"{arm:10} {len(vals):>3} {accuracy_text([v['correct'] for v in vals]):>22} "
            f"{vs:>16} {mean('thinking_tokens'):>6.0f} {mean('completion_tokens'):>6.0f} "
            f"{mean('prompt_tokens'):>7.0f} {mean('calls'):>5.1f} {mean('wall_s'):>7.1f} "
            f"{max(peaks):>5}/{statistics.median(peaks):<6.0f} "
            + " ".join(f"{k}:{n}" for k, n in counts.items())
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--first", type=int, default=50, help="how many questions")
    ap.add_argument("--offset", type=int, default=0, help="first question's index in the file")
    ap.add_argument("--data", default=str(DATA / "gsm8k" / "test.jsonl"))
    ap.add_argument("--window", type=int, default=1024, help="context of any call (tokens)")
    ap.add_argument("--budgets", type=int, nargs="+", default=[2048], help="resum thinking")
    ap.add_argument("--answer-tokens", type=int, default=256, help="answer allowance, both arms")
    ap.add_argument(
        "--answer-lead",
        default="answer_lead",
        help="template written after the closed thinking, both arms (none: the bare marker)",
    )
    ap.add_argument("--summary-max-tokens", type=int, default=160)
    ap.add_argument("--max-summaries", type=int, default=16, help="high: the budget binds")
    ap.add_argument("--min-window-tokens", type=int, default=64)
    ap.add_argument("--parallel", type=int, default=1, help="concurrent runs (server slots)")
    ap.add_argument(
        "--threads", type=int, default=1, help="llama-server threads (1: see the module doc)"
    )
    ap.add_argument("--request-timeout", type=float, default=3600.0)
    ap.add_argument("--out", default="results/resum_context_binds.jsonl")
    ap.add_argument("--only", nargs="+", default=None, help="measure only these arms (resumable)")
    ap.add_argument("--traces", default=None, help="a folder for each run's trace (JSONL)")
    ap.add_argument("--report-only", action="store_true", help="print the table from --out")
    args = ap.parse_args()
    arms = ["cut", *(f"resum{t}" for t in args.budgets)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.traces:
        Path(args.traces).mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        asyncio.run(measure(args, [a for a in arms if not args.only or a in args.only], out))
    keep = {i for i, _, _ in load(Path(args.data), args.offset, args.first)}
    rows = [r for r in read_rows(out, settings(args)) if r["index"] in keep]
    report(rows, arms, args.window)


if __name__ == "__main__":
    main()
