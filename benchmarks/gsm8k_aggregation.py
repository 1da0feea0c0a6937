"""GSM8K: greedy vs. majority / weighted / SSA / LLM-select over ONE shared set of k samples, and
adaptive sampling replayed over the same samples.

Sample once, aggregate many ways: each question's k samples (seed base+i, temperature 0.7) are
drawn by the sampler model and saved to OUT/samples.jsonl (math_cot_100 format plus token counts
and confidences); the aggregators then run offline over that file, with the aggregator model only.
Adaptive sampling (rounds 2, 4, 8; stop at agreement >= threshold) is replayed over the same
seeded samples: it draws exactly the first m of them, so its accuracy and tokens are computed from
them. Resumable: re-running skips finished questions.

    python benchmarks/gsm8k_aggregation.py -n 30 --out results/bench_05b
    python benchmarks/gsm8k_aggregation.py -n 20 --sampler qwen2.5-coder-1.5b-instruct \\
        --no-greedy --out results/bench_15b
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from statistics import mean
from typing import Any

from ponder.aggregator import SSA, LLMSelect, Majority, Weighted
from ponder.backends.local import LocalBackend
from ponder.backends.local.model import MODELS, ensure_model
from ponder.behaviour.datasets import load_items, select
from ponder.config import ChainConfig
from ponder.evaluation.offline import load_sample_sets, offline_jobs
from ponder.evaluation.records import read_records
from ponder.evaluation.runner import EvalJob, evaluate
from ponder.evaluation.summary import format_table
from ponder.grading import is_equivalent
from ponder.orchestrator.engine import Orchestrator
from ponder.protocol.actions import Outcome
from ponder.strategies import ChainOfThought, ParallelSample
from ponder.strategies.adaptive import doubling, should_stop

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "gsm8k" / "test.jsonl"


THREADS = 1  # on a contended 2-core machine, 1 thread per server was ~5x faster than the default


def backend_for(model: str, slots: int = 8) -> LocalBackend:
    path = str(ensure_model(MODELS[model], quiet=True))
    return LocalBackend(path, quiet=True, n_parallel=slots, threads=THREADS)


async def draw_samples(args: argparse.Namespace, items: list[Any], out: Path) -> None:
    path = out / "samples.jsonl"
    done = {r["id"] for r in read_records(path)}
    todo = [it for it in items if it.id not in done]
    if not todo:
        return
    backend = backend_for(args.sampler, slots=8 * args.sample_concurrency)
    await backend.start()
    inner = ChainOfThought(temperature=args.temperature, max_tokens=args.max_tokens, logprobs=True)
    strat = ParallelSample(k=args.k, inner=inner, aggregator=Majority(), seed=args.seed)
    orch = Orchestrator(backend, max_concurrency=8 * args.sample_concurrency)
    gate = asyncio.Semaphore(args.sample_concurrency)
    lock = asyncio.Lock()
    finished = 0

    async def one(it: Any, f: Any) -> None:
        nonlocal finished
        async with gate:
            r = await orch.run(strat, it.question)
        async with lock:
            s = r.outcome.samples
            rec = {
                "id": it.id,
                "idx": it.id,
                "question": it.question,
                "answer": it.gold,
                "responses": [x.text for x in s],
                "preds": [x.answer for x in s],
                "confidences": [x.confidence for x in s],
                "tokens": [x.data.get("tokens", 0) for x in s],
                "prompt_tokens": r.usage.prompt_tokens,
                "completion_tokens": r.usage.completion_tokens,
                "wall_time_s": r.usage.wall_time_s,
                "seeds": [x.data.get("seed") for x in s],
            }
            f.write(json.dumps(rec) + "\n")
            f.flush()
            finished += 1
            print(f"sampled {finished}/{len(todo)} in {r.usage.wall_time_s:.1f}s", flush=True)

    try:
        with path.open("a") as f:
            await asyncio.gather(*(one(it, f) for it in todo))
    finally:
        await backend.aclose()


def adaptive_replay(rows: list[dict[str, Any]], k: int, threshold: float) -> dict[str, Any]:
    correct, tokens, drawn = [], [], []
    for r in rows:
        samples = [Outcome(answer=p, text="") for p in r["preds"]]
        per_prompt = r["prompt_tokens"] / max(len(samples), 1)
        m = k
        for target in doubling(k):
            if should_stop(samples[:target], threshold, 2)[0]:
                m = target
                break
        pick = Majority().choose(None, samples[:m]) if any(s.answer for s in samples[:m]) else None  # type: ignore[arg-type]
        correct.append(bool(pick) and is_equivalent(pick.answer, r["answer"]))
        tokens.append(per_prompt * m + sum(r["tokens"][:m]))
        drawn.append(m)
    return {
        "accuracy": mean(correct),
        "mean_total_tokens": mean(tokens),
        "mean_samples": mean(drawn),
    }


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=30)
    ap.add_argument("-k", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=320)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--sampler", default="qwen2.5-coder-0.5b-instruct", choices=sorted(MODELS))
    ap.add_argument(
        "--aggregator-model", default="qwen2.5-coder-0.5b-instruct", choices=sorted(MODELS)
    )
    ap.add_argument("--no-greedy", action="store_true")
    ap.add_argument("--threshold", type=float, default=0.75)
    ap.add_argument("--out", default="results/bench_gsm8k")
    ap.add_argument("--threads", type=int, default=1, help="llama-server threads (default 1)")
    ap.add_argument("--no-llm-select", action="store_true", help="skip the LLM-select baseline")
    ap.add_argument("--no-ssa", action="store_true", help="skip SSA (the slowest aggregator)")
    ap.add_argument(
        "--sample-concurrency",
        type=int,
        default=1,
        help="questions sampled at once (k slots each); >1 raises throughput, and each "
        "question's wall time then overlaps others'",
    )
    args = ap.parse_args()
    global THREADS
    THREADS = args.threads
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    items = select(load_items(DATA), args.n)
    rows: list[dict[str, Any]] = []

    if not args.no_greedy:
        chain = ChainConfig(strategy=ChainOfThought(temperature=0.0, max_tokens=args.max_tokens))
        b = backend_for(args.sampler)
        rows += await evaluate(
            [EvalJob("greedy", chain)], items, out, concurrency=4, backends={"default": b}
        )
        await b.aclose()

    t0 = time.perf_counter()
    await draw_samples(args, items, out)
    print(f"sampling done in {time.perf_counter() - t0:.0f}s")
    sample_rows = [
        r for r in read_records(out / "samples.jsonl") if r["id"] in {i.id for i in items}
    ]
    sample_tokens = mean(r["prompt_tokens"] + r["completion_tokens"] for r in sample_rows)
    sample_wall = mean(r["wall_time_s"] for r in sample_rows)

    agg = backend_for(args.aggregator_model)
    aggs = [
        (f"majority@{args.k}", Majority()),
        (f"weighted@{args.k}", Weighted(by="confidence")),
    ]
    if not args.no_ssa:
        aggs.append((f"ssa@{args.k}", SSA(max_tokens=args.max_tokens, max_candidate_tokens=256)))
    if not args.no_llm_select:
        aggs.append((f"llm_select@{args.k}", LLMSelect(max_candidate_tokens=256, max_tokens=64)))
    sets = load_sample_sets(str(out / "samples.jsonl"))
    sets = [s for s in sets if s.id in {i.id for i in items}]
    agg_rows = await evaluate(
        offline_jobs(aggs), sets, out, concurrency=4, backends={"default": agg}
    )
    await agg.aclose()
    for r in agg_rows:  # add the shared sampling cost to each aggregator's own cost
        r["aggregator_tokens"] = r["mean_total_tokens"]
        r["mean_total_tokens"] += sample_tokens
        r["mean_prompt_tokens"] += mean(x["prompt_tokens"] for x in sample_rows)
        r["mean_completion_tokens"] += mean(x["completion_tokens"] for x in sample_rows)
        r["median_wall_s"] += sample_wall
    rows += agg_rows
    ad = adaptive_replay(sample_rows, args.k, args.threshold)
    rows.append(
        {"config": f"adaptive<= {args.k} (t={args.threshold})", "n": len(sample_rows), **ad}
    )
    print(format_table(rows))
    print(
        "aggregator-only tokens/q:",
        {r["config"]: round(r.get("aggregator_tokens", 0)) for r in agg_rows},
    )
    print(f"sampling: {sample_tokens:.0f} tokens/q, mean wall {sample_wall:.1f}s/q")
    (out / "bench_summary.json").write_text(json.dumps(rows, indent=2, default=str))
    try:
        from ponder.evaluation.plot import plot_scaling

        print(
            "plot:",
            plot_scaling(rows, out / "scaling.png", title=f"GSM8K first {args.n}, {args.sampler}"),
        )
    except Exception as exc:  # plotting is optional here
        print("no plot:", exc)


if __name__ == "__main__":
    asyncio.run(main())
