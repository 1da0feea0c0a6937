"""The one capability check: a chain's parts declare what they need (``requires()``), the check
walks the chain and compares with each role's backend before the first call."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest

from ponder.backends.base import Capabilities
from ponder.backends.fake import FakeBackend
from ponder.errors import CapabilityMissing
from ponder.orchestrator.capabilities import chain_parts, check_capabilities, missing_capabilities
from ponder.orchestrator.session import Session
from ponder.protocol.actions import Flow, Outcome, Task
from ponder.protocol.requirements import Requirement
from ponder.protocol.strategy import Strategy
from ponder.strategies.drr import StopThinking
from ponder.strategies.parallel import ParallelSample
from tests.unit.drr_helpers import agree_dm, manifest

NO_CONTINUATION = Capabilities(continuation=False)


class NeedsBudgetKnob(Strategy):
    """Test-only: needs a thinking budget (a native knob or continuation) on role 'thinker'."""

    name: ClassVar[str] = "test_needs_knob"

    def requires(self) -> tuple[Requirement, ...]:
        return (Requirement.of("native_n", "continuation", role="thinker", why="budget forcing"),)

    def flow(self, task: Task) -> Flow:
        return Outcome(answer="1", text="1")
        yield


@pytest.fixture
def dm_path(tmp_path: Path) -> str:
    return str(agree_dm(manifest(probe_every=4, max_tokens=12, k=4)).save(tmp_path / "dm.json"))


async def test_a_nested_part_is_found_and_named_with_its_path(dm_path: str) -> None:
    chain = ParallelSample(k=2, inner=StopThinking(dm=dm_path, probe_every=4, max_tokens=12))
    assert [p for p, _ in chain_parts(chain)][:2] == ["", "inner"]
    with pytest.raises(CapabilityMissing) as info:
        await check_capabilities(chain, {"default": FakeBackend([], capabilities=NO_CONTINUATION)})
    msg = str(info.value)
    assert "strategy 'drr_think' (at inner)" in msg and "'continuation'" in msg
    assert "role 'default'" in msg and "'fake' backend" in msg and "continuation: prefill" in msg


async def test_unknown_passes_and_any_of_is_met_by_one() -> None:
    unknown = FakeBackend([], capabilities=Capabilities())
    assert await missing_capabilities(NeedsBudgetKnob(), {"default": unknown}) == []
    one = FakeBackend([], capabilities=Capabilities(native_n=True, continuation=False))
    assert await missing_capabilities(NeedsBudgetKnob(), {"default": one}) == []
    none = FakeBackend([], capabilities=Capabilities(native_n=False, continuation=False))
    [m] = await missing_capabilities(
        NeedsBudgetKnob(), {"default": FakeBackend([]), "thinker": none}
    )
    assert "'native_n' or 'continuation' on role 'thinker' (budget forcing)" in m.message()


async def test_a_session_refuses_before_the_first_call(dm_path: str) -> None:
    backend = FakeBackend(["x"], capabilities=NO_CONTINUATION)
    async with Session(backend) as session:
        with pytest.raises(CapabilityMissing, match="drr_think"):
            await session.run(StopThinking(dm=dm_path, probe_every=4, max_tokens=12), "q?")
    assert backend.requests == []


def test_a_misspelt_capability_is_a_programming_error() -> None:
    class Typo(NeedsBudgetKnob):
        name: ClassVar[str] = "test_typo"

        def requires(self) -> tuple[Requirement, ...]:
            return (Requirement.of("continuations"),)

    from ponder.orchestrator.capabilities import requirements

    with pytest.raises(ValueError, match="continuations"):
        requirements(Typo())
