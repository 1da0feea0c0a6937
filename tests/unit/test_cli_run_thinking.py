"""`ponder run --thinking-budget` / `--reasoning-effort`: the thinking budget per call."""

import pytest

from ponder.cli import build_parser
from ponder.cli.run import _config
from ponder.errors import ConfigError, InputError


def config_of(*argv: str):
    args = build_parser().parse_args(["run", "2+2?", *argv])
    return _config(args)


def test_no_flag_no_thinking_budget() -> None:
    assert config_of().thinking_limit() is None


def test_thinking_budget_flag() -> None:
    limit = config_of("--thinking-budget", "96").thinking_limit()
    assert limit is not None and limit.tokens == 96 and limit.effort is None


def test_reasoning_effort_flag_maps_through_the_efforts_table() -> None:
    cfg = config_of("--reasoning-effort", "low")
    limit = cfg.thinking_limit()
    assert limit is not None and limit.effort == "low"
    assert limit.tokens == cfg.thinking.efforts["low"]


def test_thinking_budget_wins_over_effort() -> None:
    limit = config_of("--reasoning-effort", "high", "--thinking-budget", "40").thinking_limit()
    assert limit is not None and limit.tokens == 40


def test_unknown_effort_names_the_flag_and_the_choices() -> None:
    with pytest.raises(ConfigError) as e:
        config_of("--reasoning-effort", "extreme")
    msg = str(e.value)
    assert "--reasoning-effort" in msg and "low" in msg and "high" in msg


def test_non_positive_budget_is_refused() -> None:
    with pytest.raises(InputError, match="--thinking-budget"):
        config_of("--thinking-budget", "0")
