"""Parallel sampling with three aggregators over the embedded local model.

    python examples/self_consistency.py "A farmer has 17 sheep and buys 5 more. How many now?"

Draws k=4 samples once per aggregator (same seeds, so the same samples up to server
nondeterminism) and prints each aggregator's answer, the sample answers and token usage.
"""

from __future__ import annotations

import asyncio
import sys

from ponder import Session
from ponder.aggregator import SSA, LLMSelect, Majority
from ponder.backends.local import LocalBackend
from ponder.strategies import ChainOfThought, ParallelSample


async def main(question: str) -> None:
    # one backend serves both the sampler and aggregator roles; the session starts and stops it
    async with Session(LocalBackend(n_parallel=4)) as session:
        inner = ChainOfThought(temperature=0.7, max_tokens=256)
        for agg in (Majority(), SSA(max_tokens=256), LLMSelect()):
            strat = ParallelSample(k=4, seed=7, inner=inner, aggregator=agg)
            result = await session.run(strat, question)
            answers = [s.answer for s in result.outcome.samples]
            usage = result.usage.summary_line()
            print(f"{agg.name:>10}: {result.answer}   samples={answers}   {usage}")


if __name__ == "__main__":
    asyncio.run(main(" ".join(sys.argv[1:]) or "What is 23 * 17 - 100?"))
