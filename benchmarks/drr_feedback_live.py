"""DRR feedback vs self-critique feedback, live on the default model (needs the model; slow).

Runs three chains on the first ``--first`` GSM8K test questions with the same seeds, so their
first rounds are the same trace: no feedback (``rounds: 0``), feedback driven by the DM
(``judge: dm``) and by self-critique (``judge: self_critique``, P("yes") under the threshold)::

    python benchmarks/drr_feedback_live.py --dm ponder/stopping/artifacts/default.json \\
        --first 50 --threshold 0.3 --critique-threshold 0.5 --rounds 2 --out results/drr-feedback
    # the probe-free DM, one plain request a round (no segments, no probes):
    python benchmarks/drr_feedback_live.py --dm probe-free --probe-free --chains dm_feedback \\
        --first 100 --threshold 0.3 --rounds 2 --out results/drr-feedback-free

Writes one JSON line per (chain, question) to ``--out``/runs.jsonl (resumable: done pairs are
skipped) and prints accuracy (95% Wilson), paired won/lost against no feedback, mean generated
tokens and how many answers were sent back. ``--live-check N`` instead runs ``drr_think`` and
``drr_sample`` live on N questions of a collection and compares answers and tokens with its
replay (the issue's replay == live confirmation); it needs the collection's seeds and settings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from ponder.behaviour.datasets import load_items, select
from ponder.behaviour.stats import paired, wilson
from ponder.config import ChainConfig
from ponder.grading import is_equivalent
from ponder.orchestrator.session import Session
from ponder.protocol.actions import Task
from ponder.protocol.strategy import Strategy
from ponder.strategies.drr import Feedback, StopSampling, StopThinking

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "gsm8k" / "test.jsonl"


def chains(args: argparse.Namespace) -> dict[str, Strategy]:
    common = {"dm": args.dm, "rounds": args.rounds, "seed": args.seed}
    dm = {"probes": not args.probe_free}
    return {
        "no_feedback": Feedback(judge="dm", threshold=0.0, **{**common, "rounds": 0}, **dm),
        "dm_feedback": Feedback(judge="dm", threshold=args.threshold, **common, **dm),
        "critique_feedback": Feedback(
            judge="self_critique", threshold=args.critique_threshold, **common
        ),
    }


def session_of(args: argparse.Namespace) -> Session:
    """The chain file's backend (``-c``; e.g. a running llama-server), else the embedded model."""
    cfg = ChainConfig.load(args.config) if args.config else ChainConfig(max_concurrency=8)
    return cfg.session()


async def feedback(args: argparse.Namespace) -> None:
    items = select(load_items(args.dataset), args.first)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = out / "runs.jsonl"
    done = {
        (r["chain"], r["id"])
        for r in map(json.loads, runs.read_text().splitlines() if runs.exists() else [])
    }
    async with session_of(args) as orch:
        for name, strat in chains(args).items():
            if name not in args.chains.split(","):
                continue
            todo = [it for it in items if (name, it.id) not in done]

            async def one(it: Any, name: str = name, strat: Strategy = strat) -> None:
                t0 = time.perf_counter()
                r = await orch.run(strat, Task(it.question))
                rec = {
                    "chain": name,
                    "id": it.id,
                    "answer": r.answer,
                    "correct": is_equivalent(r.answer, it.gold),
                    "completion_tokens": r.usage.completion_tokens,
                    "prompt_tokens": r.usage.prompt_tokens,
                    "calls": r.usage.calls,
                    "wall_s": round(time.perf_counter() - t0, 2),
                    "rounds": len(r.outcome.data.get("rounds", [])),
                    "first_correct": is_equivalent(
                        (r.outcome.data.get("rounds") or [{"answer": r.answer}])[0]["answer"],
                        it.gold,
                    ),
                    "confidence": r.outcome.confidence,
                    "round_answers": [h.get("answer") for h in r.outcome.data.get("rounds", [])],
                    "round_scores": [h.get("score") for h in r.outcome.data.get("rounds", [])],
                }
                with runs.open("a") as f:
                    f.write(json.dumps(rec) + "\n")

            await asyncio.gather(*(one(it) for it in todo))
    report(runs)


def report(runs: Path) -> None:
    rows = [json.loads(line) for line in runs.read_text().splitlines()]
    by: dict[str, dict[str, Any]] = {}
    for r in rows:
        by.setdefault(r["chain"], {})[r["id"]] = r
    base = by.get("no_feedback", {})
    for name, recs in by.items():
        ids = [i for i in recs if i in base] if base else list(recs)
        k = sum(recs[i]["correct"] for i in ids)
        lo, hi = wilson(k, len(ids))
        won, lost, p = 0, 0, 1.0
        if base:
            pr = paired([recs[i]["correct"] for i in ids], [base[i]["correct"] for i in ids])
            won, lost, p = pr.won, pr.lost, pr.p_value
        tok = sum(recs[i]["completion_tokens"] for i in ids) / max(1, len(ids))
        sent = sum(recs[i]["rounds"] > 1 for i in ids)
        own = [i for i in recs if "first_correct" in recs[i]]
        if own:  # the change feedback made to this chain's own first answers (same traces)
            p_own = paired(
                [recs[i]["correct"] for i in own], [recs[i]["first_correct"] for i in own]
            )
            w0, l0, p0 = p_own.won, p_own.lost, p_own.p_value
            k0 = sum(recs[i]["first_correct"] for i in own)
            print(
                f"{name:<18} vs its own first round: n={len(own)} first {k0} -> final "
                f"{sum(recs[i]['correct'] for i in own)}, won/lost {w0}/{l0} (McNemar p {p0:.2f})"
            )
        print(
            f"{name:<18} n={len(ids):>3} acc {k / max(1, len(ids)):.3f} [{lo:.3f},{hi:.3f}] "
            f"won/lost vs no_feedback {won}/{lost} (McNemar p {p:.2f}) "
            f"tokens {tok:.0f} sent back {sent}"
        )


async def live_check(args: argparse.Namespace) -> None:
    """Replay vs live on the first N questions of a collection (same seeds and settings)."""
    from ponder.behaviour.records import read_collection
    from ponder.learning.drr.replay import dm_sample, dm_think, score_collection
    from ponder.stopping.model import load_dm

    manifest, records = read_collection(Path(args.collection).expanduser())
    dm = load_dm(args.dm)
    s = manifest.settings
    scored = score_collection(dm, records[: args.live_check], int(s["max_tokens"]))
    fields = {k: s[k] for k in ("max_tokens", "probe_every", "probe_max_tokens", "temperature")}
    agree = tokens_agree = total = 0
    async with session_of(args) as orch:
        for q in scored:
            rep = dm_sample(q, dm, args.threshold)
            live = StopSampling(
                dm=args.dm, k=len(q.traces), threshold=args.threshold, seed=manifest.seed, **fields
            )
            r = await orch.run(live, Task(q.record.question))
            think = dm_think(q.traces[0], args.threshold)
            one = StopThinking(dm=args.dm, threshold=args.threshold, seed=manifest.seed, **fields)
            r1 = await orch.run(one, Task(q.record.question))
            total += 1
            agree += (r.outcome.data["drawn"] == rep.stopped_at) and (
                r1.answer == q.traces[0].states[think.stopped_at].answer
            )
            tokens_agree += r.usage.completion_tokens == rep.tokens
            print(
                f"{q.record.id}: sample drawn live {r.outcome.data['drawn']} / replay "
                f"{rep.stopped_at}, tokens {r.usage.completion_tokens} / {rep.tokens}; think "
                f"answer live {r1.answer} / replay {q.traces[0].states[think.stopped_at].answer}"
            )
    print(f"decisions agree on {agree}/{total}, token counts on {tokens_agree}/{total}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dm", required=True, help="DM artifact (or 'default')")
    ap.add_argument("-c", "--config", help="chain file whose backend to use (default: embedded)")
    ap.add_argument("--dataset", default=str(DATA))
    ap.add_argument("--first", type=int, default=50)
    ap.add_argument("--threshold", type=float, default=0.3, help="DM: send back under this P")
    ap.add_argument("--critique-threshold", type=float, default=0.5)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--probe-free",
        action="store_true",
        help="the DM arms send each round as one plain request judged at its end (a probe-free "
        "DM: --dm probe-free)",
    )
    ap.add_argument(
        "--chains",
        default="no_feedback,dm_feedback,critique_feedback",
        help="comma-separated subset to run (each also reports its change from its own round 0)",
    )
    ap.add_argument("--out", default="results/drr-feedback")
    ap.add_argument("--live-check", type=int, help="replay vs live on N collection questions")
    ap.add_argument("--collection", help="the collection --live-check replays")
    args = ap.parse_args()
    if args.live_check:
        if not args.collection:
            ap.error("--live-check needs --collection")
        asyncio.run(live_check(args))
    else:
        asyncio.run(feedback(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
