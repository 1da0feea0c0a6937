"""Side by side: the prebuilt llama.cpp runtime (xllamacpp wheel) vs the native llama-server build.

Same model (the default Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF), same prompts, same settings:
for each runtime, one freshly started server (``-np`` slots), a warm-up call, then

- one stream: one greedy chat completion of exactly ``--tokens`` tokens (``ignore_eos``);
- summed over slots: ``--slots`` such completions at once (distinct prompts), total tokens / wall;
- start-up: seconds from launch until ``/health`` answers (model load included);
- peak memory: the server process's peak RSS (``VmHWM``).

Runtimes alternate (prebuilt, native, prebuilt, native, ...) over ``--repeat`` rounds, each on a
fresh server, since llama-server's speed drifts after heavy parallel load. Needs the native build
(``ponder setup --native``); run by hand on an otherwise idle machine:

    python benchmarks/runtime_compare.py --tokens 200 --slots 8 --repeat 2

Results: one JSON line per measurement appended to results/runtime_compare.jsonl, a table on
stdout (medians over rounds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from ponder.backends.local import prepare_model
from ponder.backends.local import runtime as rt
from ponder.backends.local.measure import measure_runtime

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tokens", type=int, default=200, help="tokens per stream")
    ap.add_argument("--slots", type=int, default=8, help="parallel slots (and streams)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds (each runtime once per round)")
    ap.add_argument("--threads", type=int, default=None, help="threads (default: all cores)")
    ap.add_argument("--runtimes", default="prebuilt,native", help="comma-separated")
    ap.add_argument("--out", default=str(ROOT / "results" / "runtime_compare.jsonl"))
    args = ap.parse_args()

    model = prepare_model()
    makers = {"prebuilt": rt.prebuilt_runtime, "native": lambda: rt.native_runtime(build=False)}
    runtimes = [makers[name.strip()]() for name in args.runtimes.split(",")]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[rt.RuntimeSpeed]] = {r.name: [] for r in runtimes}
    for round_ in range(args.repeat):
        for runtime in runtimes:
            speed = measure_runtime(
                runtime,
                model,
                tokens=args.tokens,
                slots=args.slots,
                threads=args.threads,
                ctx_per_slot=max(1024, args.tokens + 256),
            )
            rows[runtime.name].append(speed)
            record = {"round": round_, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), **vars(speed)}
            record.update(tokens=args.tokens, threads=args.threads, machine=rt.machine_id())
            with out.open("a") as f:
                f.write(json.dumps(record) + "\n")
            print(json.dumps(record), flush=True)

    print()
    print(
        f"| runtime | version | one stream tok/s | summed over {args.slots} slots tok/s "
        "| start-up s | peak RSS MB |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, speeds in rows.items():

        def med(attr: str, speeds: list[rt.RuntimeSpeed] = speeds) -> str:
            vals = [getattr(s, attr) for s in speeds if getattr(s, attr) is not None]
            return f"{statistics.median(vals):.1f}" if vals else "?"

        print(
            f"| {name} | {speeds[0].version} | {med('single_tok_s')} | {med('parallel_tok_s')} "
            f"| {med('start_s')} | {med('peak_rss_mb')} |"
        )


if __name__ == "__main__":
    main()
