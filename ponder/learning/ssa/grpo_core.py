"""The torch-free parts of GRPO for the SSA aggregator: rewards and group-relative advantages.

Use ``answer_reward(text, gold)`` as the reward of one aggregator completion (1.0 when its
extracted answer is equivalent to the gold answer, graded exactly as the collector and
``ponder ssa rft`` grade, else 0.0), and ``group_advantages(rewards)`` to turn the rewards of
one prompt's group of completions into GRPO advantages (Shao et al., 2024): each reward minus
the group's mean, divided by the group's standard deviation when ``scale`` is on (Dr. GRPO,
Liu et al., 2025, leaves it off). A group whose rewards are all equal carries no signal: every
advantage is 0 and ``ponder.learning.ssa.grpo`` skips its backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ponder.answers import extract_answer
from ponder.grading import is_equivalent

Reward = Callable[[str, str, list[int]], float]
"""A reward function: (completion text, gold answer, completion token ids) -> reward."""


def answer_reward(text: str, gold: str, token_ids: list[int] | None = None) -> float:
    """1.0 if the completion's final answer is equivalent to ``gold``, else 0.0."""
    del token_ids
    return 1.0 if is_equivalent(extract_answer(text), gold) else 0.0


def group_advantages(
    rewards: Sequence[float], *, scale: bool = True, eps: float = 1e-4
) -> list[float]:
    """GRPO advantages of one group: ``r - mean`` (over ``std + eps`` when ``scale``)."""
    if not rewards:
        return []
    mean = sum(rewards) / len(rewards)
    centred = [r - mean for r in rewards]
    if all(abs(c) < 1e-12 for c in centred):
        return [0.0] * len(rewards)
    if not scale:
        return centred
    std = math.sqrt(sum(c * c for c in centred) / len(centred))
    return [c / (std + eps) for c in centred]
