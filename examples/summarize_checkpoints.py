"""Reason past a fixed working context with self-summarization checkpoints (ReSum-style).

    python examples/summarize_checkpoints.py

Runs on the embedded local model; every call, summaries included, stays under
``checkpoint_tokens``; the trace shows each dropped window and the summary that replaced it.
"""

from __future__ import annotations

import asyncio

from ponder import Session
from ponder.backends.local import LocalBackend
from ponder.strategies import SummarizingReasoner

QUESTION = (
    "A baker makes 3 batches of 24 cookies each day for 5 days, sells 250 cookies and gives "
    "away 40. How many cookies are left?"
)


async def main() -> None:
    strategy = SummarizingReasoner(checkpoint_tokens=400, max_summaries=3, summary_max_tokens=96)
    async with Session(LocalBackend()) as session:
        result = await session.run(strategy, QUESTION)
    print("answer:", result.answer)
    print(
        "usage:", result.usage.summary_line(), "| peak context:", result.usage.peak_context_tokens
    )
    for e in result.trace.of_type("decision"):
        if e["event"] == "checkpoint":
            print(f"\n--- checkpoint after window {e['window']} ({e['context_tokens']} tokens)")
            print("summary:", e["summary"])


if __name__ == "__main__":
    asyncio.run(main())
