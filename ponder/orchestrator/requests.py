"""Moved to ``ponder.protocol.requests``; this module re-exports its names for old imports."""

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

__all__ = [
    "Choice",
    "Completion",
    "GenerationFailure",
    "GenerationRequest",
    "Message",
    "Result",
    "Reward",
    "RewardFailure",
    "RewardRequest",
    "RewardResult",
    "SamplingParams",
]
