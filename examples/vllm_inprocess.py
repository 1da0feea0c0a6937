"""Drive an in-process vLLM engine: one chain-of-thought run, then 8 seeded samples in one call.

Run with a Python that has vllm (e.g. the venv from scripts/setup-vllm-venv.sh):

    .venv-vllm/bin/python examples/vllm_inprocess.py            # default model (converted once)
    .venv-vllm/bin/python examples/vllm_inprocess.py /path/to/hf-model-dir

The engine spawns worker processes, so the code runs under ``if __name__ == "__main__"``.
"""

import asyncio
import collections
import sys

from ponder import ChainOfThought, Session
from ponder.answers import extract_answer
from ponder.backends.vllm_engine import VLLMBackend
from ponder.protocol.requests import GenerationRequest, SamplingParams

QUESTION = "A shop sells pens at 3 dollars each. How much do 7 pens cost?"


async def main(model: str | None) -> None:
    backend = VLLMBackend(model, max_model_len=2048)
    async with Session(backend) as session:  # starts the engine: slow once per process (stderr)
        result = await session.run(ChainOfThought(max_tokens=200), QUESTION)
        print("CoT answer:", result.answer, "|", result.usage.summary_line())

        request = GenerationRequest(
            messages=({"role": "user", "content": QUESTION + " Put the answer in \\boxed{}."},),
            params=SamplingParams(n=8, temperature=0.7, max_tokens=200, seed=42),
        )
        c = await backend.generate(request)  # one engine request, n=8, seeds 42..49
        votes = collections.Counter(extract_answer(ch.text) for ch in c.choices)
        print("8 samples:", dict(votes), "| tokens:", c.completion_tokens)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else None))
