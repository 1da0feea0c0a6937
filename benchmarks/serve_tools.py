"""Agents through ``ponder serve``: pass-through vs a k=4 tool-call vote, on GSM8K with a
``calculator`` tool that the client's own loop runs (issue 19's measurement).

Run by hand from the repo root (it starts the embedded llama-server with the default model and
the proxy in a thread; minutes per arm on a small CPU)::

    PYTHONPATH=. python benchmarks/serve_tools.py --questions 30 --out results/serve_tools

For each question and arm the official openai client runs an agent loop: it offers
``calculator(expression)``, executes every tool call it gets back (``ponder.tools.calculator``)
and sends the result, until a text answer or ``--max-turns``. Arms: ``passthrough`` (model
``local``: the upstream's own answer, with the proxy's text-tool-call conversion) and ``sc4``
(``ponder:sc4``: every turn is 4 samples and a majority vote over tool calls and answers).
Reported per arm: task accuracy (the final text's extracted answer against the gold), tokens per
question (the ``usage`` of every turn, all samples included), the share of questions with at
least one tool call, the share of turns answered with a well-formed tool call (offered name,
JSON object arguments), and malformed calls. Per-question records go to ``<out>/records.jsonl``,
the summary to ``<out>/summary.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import openai

from ponder.answers import extract_answer
from ponder.backends.local import LocalBackend
from ponder.behaviour.datasets import load_items, select
from ponder.grading import is_equivalent
from ponder.serve import ServeConfig, ServerThread
from ponder.tools import get_tool

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
CALCULATOR = get_tool("calculator")
SYSTEM = (
    "Solve the math problem. You may call the calculator tool for arithmetic: reply with only "
    '{"name": "calculator", "arguments": {"expression": "<expression>"}} to call it. '
    "When you know the result, give the final answer as \\boxed{number}."
)


def well_formed(call: Any) -> bool:
    if not (call.id and call.type == "function" and call.function.name == "calculator"):
        return False
    try:
        args = json.loads(call.function.arguments)
    except ValueError:
        return False
    return isinstance(args, dict) and isinstance(args.get("expression"), str)


def agent_loop(
    client: openai.OpenAI, model: str, question: str, max_turns: int, max_tokens: int
) -> dict[str, Any]:
    messages: list[Any] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": question},
    ]
    tokens = turns = tool_turns = good_turns = good_calls = bad_calls = 0
    final = ""
    error = None
    t0 = time.perf_counter()
    for _ in range(max_turns):
        try:
            resp = client.chat.completions.create(
                model=model,
                messages=messages,
                tools=[CALCULATOR.schema()],
                tool_choice="auto",
                max_tokens=max_tokens,
                temperature=0,
            )
        except openai.OpenAIError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            break
        turns += 1
        tokens += resp.usage.total_tokens if resp.usage else 0
        msg = resp.choices[0].message
        if not msg.tool_calls:
            final = msg.content or ""
            break
        tool_turns += 1
        messages.append(msg.model_dump(exclude_none=True))
        good_turns += all(well_formed(c) for c in msg.tool_calls)
        for call in msg.tool_calls:
            if well_formed(call):
                good_calls += 1
                result = CALCULATOR.call(call.function.arguments)
            else:
                bad_calls += 1
                result = "error: malformed call; call calculator with {'expression': '...'}"
            messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    return {
        "final": final,
        "answer": extract_answer(final),
        "tokens": tokens,
        "turns": turns,
        "tool_turns": tool_turns,
        "good_turns": good_turns,
        "good_calls": good_calls,
        "bad_calls": bad_calls,
        "error": error,
        "wall_s": round(time.perf_counter() - t0, 2),
    }


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows) or 1
    turns = sum(r["turns"] for r in rows) or 1
    return {
        "questions": len(rows),
        "accuracy": round(sum(r["correct"] for r in rows) / n, 3),
        "tokens_per_question": round(statistics.mean(r["tokens"] for r in rows), 1) if rows else 0,
        "questions_with_a_tool_call": round(sum(r["tool_turns"] > 0 for r in rows) / n, 3),
        "turns_with_a_well_formed_call": round(sum(r["good_turns"] for r in rows) / turns, 3),
        "well_formed_calls": sum(r["good_calls"] for r in rows),
        "malformed_calls": sum(r["bad_calls"] for r in rows),
        "errors": sum(r["error"] is not None for r in rows),
        "no_final_answer": sum(r["answer"] is None for r in rows),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=30)
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--seed", type=int, default=None, help="draw questions at random")
    ap.add_argument("--max-turns", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=320)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    ap.add_argument("--arms", default="passthrough,sc4")
    ap.add_argument(
        "--concurrency", type=int, default=2, help="questions in flight at once (per arm)"
    )
    ap.add_argument("--out", default=str(ROOT / "results" / "serve_tools"))
    args = ap.parse_args()
    items = select(load_items(args.data, "gsm8k"), args.questions, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    backend = LocalBackend(quiet=True, n_parallel=8, threads=args.threads)
    await backend.start()
    try:
        cfg = ServeConfig.from_dict(
            {
                "upstream": {
                    "kind": "openai",
                    "base_url": backend.server.base_url,
                    "model": "local",
                },
                "chains": {
                    "sc4": {
                        "strategy": {
                            "name": "sample",
                            "k": args.k,
                            "seed": 1234,
                            "inner": {
                                "name": "cot",
                                "temperature": 0.7,
                                "max_tokens": args.max_tokens,
                            },
                        }
                    }
                },
            }
        )
        models = {"passthrough": "local", "sc4": "ponder:sc4"}
        arms = [a for a in args.arms.split(",") if a]
        summary: dict[str, Any] = {"questions": len(items), "k": args.k, "arms": {}}
        with ServerThread(cfg) as srv, (out / "records.jsonl").open("w") as rec:
            client = openai.OpenAI(
                base_url=srv.base_url, api_key="unused", max_retries=0, timeout=900
            )
            for arm in arms:
                gate = asyncio.Semaphore(args.concurrency)

                async def one(i: int, item: Any, arm: str = arm, gate: Any = gate) -> Any:
                    async with gate:
                        row = await asyncio.to_thread(
                            agent_loop,
                            client,
                            models[arm],
                            item.question,
                            args.max_turns,
                            args.max_tokens,
                        )
                    row.update(
                        arm=arm,
                        id=item.id,
                        gold=item.gold,
                        correct=row["answer"] is not None
                        and is_equivalent(row["answer"], item.gold),
                    )
                    rec.write(json.dumps(row) + "\n")
                    rec.flush()
                    print(
                        f"[{arm}] {i + 1}/{len(items)} correct={row['correct']} "
                        f"tokens={row['tokens']} tool_turns={row['tool_turns']} "
                        f"bad={row['bad_calls']} ({row['wall_s']}s)",
                        flush=True,
                    )
                    return row

                rows = list(await asyncio.gather(*(one(i, it) for i, it in enumerate(items))))
                summary["arms"][arm] = summarize(rows)
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        print(json.dumps(summary, indent=2))
    finally:
        await backend.aclose()


if __name__ == "__main__":
    asyncio.run(main())
