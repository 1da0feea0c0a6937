"""A tool-using loop with summarization-based context management (SUPO-style).

    python examples/tool_loop.py

The model may call ``calculator`` (safe arithmetic), ``search_problems`` (BM25 over solved
GSM8K-train problems, read from ../shared/data or $PONDER_DATA_DIR) and a plain Python function
declared below; when the history passes ``context_limit`` tokens it is replaced by a summary.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from ponder import Session
from ponder.backends.local import LocalBackend
from ponder.strategies import ToolLoop


def unit_price(item: Annotated[str, "the item, e.g. 'pen'"]) -> float:
    """Price in dollars of one unit of an item sold by the shop."""
    prices = {"pen": 1.25, "notebook": 3.5}
    if item not in prices:
        raise KeyError(f"no price for {item!r}; known: {', '.join(prices)}")
    return prices[item]


async def main() -> None:
    strategy = ToolLoop(
        tools=("calculator", "search_problems", unit_price),
        context_limit=1536,
        max_summary_rounds=2,
        max_turns=6,
    )
    question = "How much do 17 pens and 4 notebooks cost together? Use the tools."
    async with Session(LocalBackend()) as session:
        result = await session.run(strategy, question)
    for e in result.trace.of_type("decision"):
        print(e["event"], {k: e[k] for k in e if k in ("tool", "arguments", "result", "summary")})
    print("answer:", result.answer, "| stop:", result.outcome.data["stop_reason"])
    print(
        "usage:", result.usage.summary_line(), "| peak context:", result.usage.peak_context_tokens
    )


if __name__ == "__main__":
    asyncio.run(main())
