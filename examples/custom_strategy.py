"""Write your own sans-I/O strategy and unit-test it without a model.

A strategy yields actions; the session performs them. Here: ask once, then ask the model to
double-check its own answer, and keep the second answer only if it states one.

    python examples/custom_strategy.py
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from ponder import ChainOfThought, FakeBackend, Session
from ponder.answers import extract_answer
from ponder.protocol.requests import Completion, GenerationRequest, SamplingParams
from ponder.strategies import Generate, Note, Outcome, Strategy, Task, register_strategy


@register_strategy
class DoubleCheck(Strategy):
    """Answer, then re-read the answer and correct it if needed."""

    name: ClassVar[str] = "double-check"
    max_tokens: int = 300

    def flow(self, task: Task):
        first = yield from ChainOfThought(max_tokens=self.max_tokens).flow(task)
        check = GenerationRequest(
            messages=(
                {"role": "user", "content": task.question},
                {"role": "assistant", "content": first.text},
                {"role": "user", "content": "Check each step. Give the final answer in \\boxed{}."},
            ),
            params=SamplingParams(max_tokens=self.max_tokens),
            purpose="verify",
        )
        [result] = yield Generate.of(check)
        if isinstance(result, Completion) and extract_answer(result.text):
            yield Note("revised", {"from": first.answer, "to": extract_answer(result.text)})
            return Outcome(answer=extract_answer(result.text), text=result.text)
        return first


async def main() -> None:
    fake = FakeBackend(["12 + 30 = 43, \\boxed{43}", "Re-checking: 12 + 30 = 42. \\boxed{42}"])
    async with Session(fake) as session:
        result = await session.run(DoubleCheck(), "What is 12 + 30?")
    assert result.answer == "42" and result.usage.calls == 2
    print("answer:", result.answer, "|", result.usage.summary_line())
    print("purposes:", sorted(result.usage.by_purpose))


if __name__ == "__main__":
    asyncio.run(main())
