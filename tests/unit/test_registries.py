"""One registry mechanism for strategies, aggregators, scorer kinds, backend kinds and tools:
each is added with a decorator (or a subclass), and an unknown name lists the valid ones."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import pytest

from ponder.aggregator.registry import build_aggregator
from ponder.aggregator.scorers import SCORER_KINDS, Scorer, register_scorer
from ponder.backends.base import Backend
from ponder.backends.fake import FakeBackend
from ponder.config import BACKEND_KINDS, BackendConfig, ChainConfig
from ponder.errors import UnknownNameError
from ponder.named_registry import NamedRegistry, Registry
from ponder.protocol import Outcome, Task
from ponder.strategies.registry import build_strategy
from ponder.tools.base import get_tool


def test_a_scorer_kind_is_one_decorated_function() -> None:
    @register_scorer("test_by_length")
    def by_length(scorer: Scorer, task: Task, samples: Sequence[Outcome]) -> list[float | None]:
        return [float(len(s.text)) for s in samples]

    agg = build_aggregator({"name": "best_of_n", "scorer": {"kind": "test_by_length"}})
    flow = agg.flow(Task("q"), [Outcome("1", "a"), Outcome("2", "abc")])
    with pytest.raises(StopIteration) as stop:
        next(flow)  # best-of-n notes its pick (this scorer calls no model)
        while True:
            flow.send(None)
    assert stop.value.value.answer == "2"
    assert "test_by_length" in SCORER_KINDS.names()


def test_a_backend_kind_is_one_config_subclass() -> None:
    class EchoConfig(BackendConfig):
        __kind__ = "test_echo"
        kind: Literal["test_echo"] = "test_echo"

        def build(self) -> Backend:
            return FakeBackend(lambda r, i: "\\boxed{1}")

    cfg = ChainConfig.from_dict({"backend": {"kind": "test_echo"}})
    assert isinstance(cfg.backend, EchoConfig) and "test_echo" in BACKEND_KINDS.names()


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: build_strategy({"name": "nope"}), "strategy.name"),
        (lambda: build_aggregator({"name": "nope"}), "aggregator.name"),
        (lambda: ChainConfig.from_dict({"backend": {"kind": "nope"}}), "backend.kind"),
        (lambda: get_tool("nope"), "tools"),
    ],
)
def test_unknown_names_list_the_valid_ones(build, field) -> None:
    with pytest.raises(UnknownNameError) as exc:
        build()
    assert exc.value.field == field and exc.value.choices


def test_registry_refuses_a_second_entry_under_one_name() -> None:
    reg: Registry[int] = Registry("number")
    reg.add("one", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("one", 2)
    assert isinstance(NamedRegistry("x", Scorer), Registry)
