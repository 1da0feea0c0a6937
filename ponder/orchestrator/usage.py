"""Token and call accounting for one run, counted once, in the orchestrator."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class PurposeUsage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0


@dataclass
class Usage:
    """Every upstream token a run spent: all samples, summaries, aggregator and stop calls."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    cached_prompt_tokens: int = 0
    failed_calls: int = 0
    tool_calls: int = 0
    wall_time_s: float = 0.0
    by_purpose: dict[str, PurposeUsage] = field(default_factory=dict)
    peak_context_tokens: int = 0
    by_role: dict[str, PurposeUsage] = field(default_factory=dict)
    """The same tokens by the backend role asked for (``default``, ``aggregator``, ...)."""
    reasoning_tokens: int = 0
    """Of ``completion_tokens``, those a reasoning model spent thinking
    (``Choice.reasoning_tokens``: the upstream's ``completion_tokens_details``, else counted)."""

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(
        self,
        purpose: str,
        prompt: int,
        completion: int,
        calls: int,
        cached: int = 0,
        context: int = 0,
        reasoning: int = 0,
        role: str | None = None,
    ) -> None:
        """Count one call's tokens, in total, under ``purpose`` and (given) under ``role``."""
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.reasoning_tokens += reasoning
        self.calls += calls
        self.cached_prompt_tokens += cached
        self.peak_context_tokens = max(self.peak_context_tokens, context)
        parts = [self.by_purpose.setdefault(purpose, PurposeUsage())]
        if role is not None:
            parts.append(self.by_role.setdefault(role, PurposeUsage()))
        for part in parts:
            part.prompt_tokens += prompt
            part.completion_tokens += completion
            part.calls += calls

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        del d["by_role"]  # for the proxy's ponder object and metrics; records stay as they were
        if not self.reasoning_tokens:
            del d["reasoning_tokens"]  # records of runs without thinking stay as they were
        d["total_tokens"] = self.total_tokens
        return d

    def summary_line(self) -> str:
        return (
            f"prompt {self.prompt_tokens} / completion {self.completion_tokens} tokens, "
            f"{self.calls} model call{'s' if self.calls != 1 else ''}, {self.wall_time_s:.1f}s"
        )
