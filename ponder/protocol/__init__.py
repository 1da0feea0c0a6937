"""Ponder's vocabulary, at the bottom of the import graph: requests and completions, the actions a
flow yields, ``Task`` and ``Outcome``, and token estimates.

Import from here in strategies, aggregators, stop policies, the engine and backends alike (it
imports nothing of Ponder but ``ponder.errors``), the way httpx keeps its models in one module.
The old homes (``ponder.protocol.requests``, ``ponder.protocol.strategy``,
``ponder.backends.base``) re-export these names.
"""

from ponder.protocol.actions import (
    Action,
    CallTool,
    Flow,
    Fork,
    Generate,
    GenerateResults,
    Note,
    Outcome,
    Score,
    Task,
    ToolCall,
    ToolResult,
)
from ponder.protocol.requests import (
    Choice,
    Completion,
    GenerationFailure,
    GenerationRequest,
    Message,
    Result,
    Reward,
    RewardFailure,
    RewardRequest,
    RewardResult,
    SamplingParams,
)
from ponder.protocol.tokens import (
    bound_chat_tokens,
    bound_prompt_tokens,
    bound_tokens,
    estimate_chat_tokens,
    estimate_tokens,
)

__all__ = [
    "Action",
    "CallTool",
    "Choice",
    "Completion",
    "Flow",
    "Fork",
    "Generate",
    "GenerateResults",
    "GenerationFailure",
    "GenerationRequest",
    "Message",
    "Note",
    "Outcome",
    "Result",
    "Reward",
    "RewardFailure",
    "RewardRequest",
    "RewardResult",
    "SamplingParams",
    "Score",
    "Task",
    "ToolCall",
    "ToolResult",
    "bound_chat_tokens",
    "bound_prompt_tokens",
    "bound_tokens",
    "estimate_chat_tokens",
    "estimate_tokens",
]
