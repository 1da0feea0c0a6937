"""Answer one question with the embedded local model (no API key, no GPU).

python examples/quickstart.py "What is 17 * 23?"
"""

import sys

import ponder
from ponder import ChainOfThought

question = " ".join(sys.argv[1:]) or "What is 17 * 23?"
result = ponder.run(
    question, strategy=ChainOfThought(max_tokens=300), trace="quickstart-trace.jsonl"
)
print(result.text)
print("Answer:", result.answer)
print("Usage:", result.usage.summary_line())
