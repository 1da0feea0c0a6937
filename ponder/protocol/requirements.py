"""What a strategy needs from the backends that serve it: ``Requirement``.

A strategy (or any part of a chain: an aggregator, a scorer) declares the backend capabilities it
cannot run without in ``requires()``; ``ponder.orchestrator.capabilities.check_capabilities``
walks a chain, asks each part, and compares with each role's ``Backend.capabilities()`` before
the first call (``ponder serve`` at startup, every ``Session.run``)::

    def requires(self) -> tuple[Requirement, ...]:
        return (Requirement.of("continuation", why="the trace is generated in segments"),)

Names are fields of ``ponder.backends.base.Capabilities`` ("continuation", "logprobs", "tools",
"native_n", "raw_completion", "reward", ...). A requirement with several names is met by any one
of them (a thinking budget: a native knob *or* continuation).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Requirement"]


@dataclass(frozen=True)
class Requirement:
    """A backend capability a chain part cannot run without, on one role: any of ``any_of``."""

    any_of: tuple[str, ...]
    role: str = "default"
    why: str = ""
    """What the part does with it, for the refusal's message ("continuing a partial ...")."""

    def __post_init__(self) -> None:
        if not self.any_of:
            raise ValueError("a Requirement names at least one capability")

    @classmethod
    def of(cls, *capabilities: str, role: str = "default", why: str = "") -> Requirement:
        return cls(tuple(capabilities), role=role, why=why)

    def describe(self) -> str:
        """``'continuation'`` or ``'thinking_budget' or 'continuation'``."""
        return " or ".join(repr(c) for c in self.any_of)
