"""GRPO's torch-free parts: the answer reward and group-relative advantages."""

from __future__ import annotations

import math

import pytest

from ponder.learning.ssa.grpo_core import answer_reward, group_advantages


def test_answer_reward_grades_the_final_answer() -> None:
    assert answer_reward("Candidates 2 and 3 agree: 3 + 4 = 7. \\boxed{7}", "7") == 1.0
    assert answer_reward("The answer is \\boxed{7.0}", "7") == 1.0  # equivalent, not equal text
    assert answer_reward("The answer is \\boxed{8}", "7") == 0.0
    assert answer_reward("I cannot decide.", "7") == 0.0  # no answer at all


def test_equal_rewards_carry_no_signal() -> None:
    assert group_advantages([1.0, 1.0, 1.0, 1.0]) == [0.0, 0.0, 0.0, 0.0]
    assert group_advantages([0.0, 0.0]) == [0.0, 0.0]
    assert group_advantages([]) == []


def test_advantages_are_centred_and_scaled_by_the_group_std() -> None:
    adv = group_advantages([1.0, 0.0, 0.0, 0.0])
    # mean 0.25, std sqrt(3)/4: the right one gets +sqrt(3), each wrong one -1/sqrt(3)
    assert adv[0] == pytest.approx(math.sqrt(3), rel=1e-3)
    assert adv[1:] == pytest.approx([-1 / math.sqrt(3)] * 3, rel=1e-3)
    assert sum(adv) == pytest.approx(0.0, abs=1e-9)


def test_unscaled_advantages_are_reward_minus_mean() -> None:
    assert group_advantages([1.0, 0.0, 0.0, 0.0], scale=False) == pytest.approx(
        [0.75, -0.25, -0.25, -0.25]
    )
