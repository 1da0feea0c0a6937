"""The one capability check: does each role's backend have what the chain's parts require?

Use ``check_capabilities(strategy, backends)`` before a chain's first call: it walks the chain
(``chain_parts``: the strategy and every strategy, aggregator or scorer nested in its fields),
collects each part's ``requires()`` (``ponder.protocol.requirements.Requirement``), asks the
backend serving each requirement's role for its ``capabilities()`` and raises one
``CapabilityMissing`` naming every part, role and capability that is missing, with how to get it.
``ponder serve`` runs it for every chain at startup (a chain its upstream cannot run is refused
there, not answered 400 on every request); ``Orchestrator.run`` (so every ``Session`` run,
``ponder run``, ``ponder eval``) runs it before the first call.

What it can know: a capability a backend reports ``False`` is missing; ``None`` (not known
before calls are made, e.g. an OpenAI-compatible endpoint's ``logprobs``, or whether a server
really continues a prefilled message) passes, and a call that then fails still raises
``CapabilityMissing`` at run time. An ``openai`` backend's ``continuation`` is known from its
config (``continuation``/``apply_template_url``), so DRR chains on an upstream without it are
refused at startup.

A thinking budget (``RunLimits.thinking``, a chain's ``thinking_budget``/``reasoning_effort``) is
checked here too: every role the chain sends to needs a native knob (``thinking_budget``) or
budget forcing (``budget_forcing``, which needs ``continuation``), or the chain is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from pydantic import BaseModel

from ponder.backends.base import Backend, Capabilities
from ponder.errors import CapabilityMissing
from ponder.protocol.requirements import Requirement
from ponder.protocol.thinking_budget import ThinkingBudget

__all__ = [
    "Missing",
    "chain_parts",
    "check_capabilities",
    "has",
    "missing_capabilities",
    "thinking_requirements",
]

CAPABILITY_NAMES = frozenset(f.name for f in fields(Capabilities))

HOW_TO_GET: dict[str, str] = {
    "continuation": (
        "give the backend assistant-prefix continuation: on an openai-kind backend set "
        "continuation: prefill (servers that continue a final assistant message: vLLM, "
        "llama.cpp, SGLang) or apply_template_url (llama.cpp's /apply-template); the local "
        "backend has it"
    ),
    "logprobs": "use a backend that returns logprobs (the local backend, vLLM, llama.cpp)",
    "reward": "give that role a reward model: roles: {ROLE: {kind: reward_model, base_url: ...}}",
    "tools": "use a backend whose server accepts tools",
    "native_n": "use a backend that accepts n > 1 in one request",
    "raw_completion": "use a backend with a raw /completions endpoint",
    "thinking_budget": (
        "set the backend's thinking_budget to the upstream's native knob (reasoning_effort, "
        "thinking_token_budget for vLLM, thinking_budget_tokens for llama.cpp)"
    ),
    "budget_forcing": (
        "let Ponder force the budget: give the backend continuation (continuation: prefill or "
        "apply_template_url) and thinking_budget: auto or forcing"
    ),
}


@dataclass(frozen=True)
class Missing:
    """One requirement a backend does not meet: which part (``path`` in the chain, ``part``
    its name), the requirement, and the backend that serves its role."""

    path: str
    part: str
    requirement: Requirement
    backend: str
    what: str = ""
    """How the message names the part when it is not a strategy (the thinking budget)."""

    def message(self) -> str:
        req = self.requirement
        where = self.what or f"strategy {self.part!r}" + (f" (at {self.path})" if self.path else "")
        why = f" ({req.why})" if req.why else ""
        hints = [HOW_TO_GET[c].replace("ROLE", req.role) for c in req.any_of if c in HOW_TO_GET]
        hint = f"; {' or '.join(hints)}" if hints else ""
        return (
            f"{where} needs capability {req.describe()} on role {req.role!r}{why}, which the "
            f"{self.backend!r} backend serving it lacks{hint}"
        )


def chain_parts(root: Any) -> Iterator[tuple[str, Any]]:
    """``(path, part)`` for ``root`` and every pydantic model nested in its fields (lists,
    tuples and dicts of them too), depth first; ``path`` is the dotted field path ("" for the
    root, ``"inner"``, ``"aggregator"``, ``"stages.0"``)."""
    seen: set[int] = set()

    def walk(obj: Any, path: str) -> Iterator[tuple[str, Any]]:
        if isinstance(obj, BaseModel):
            if id(obj) in seen:
                return
            seen.add(id(obj))
            yield path, obj
            for name in type(obj).model_fields:
                yield from walk(getattr(obj, name, None), f"{path}.{name}" if path else name)
        elif isinstance(obj, (list, tuple)):
            for i, item in enumerate(obj):
                yield from walk(item, f"{path}.{i}")
        elif isinstance(obj, dict):
            for key, item in obj.items():
                yield from walk(item, f"{path}.{key}")

    yield from walk(root, "")


def requirements(root: Any) -> list[tuple[str, str, Requirement]]:
    """``(path, part name, requirement)`` for every requirement a part of the chain declares."""
    out = []
    for path, part in chain_parts(root):
        requires = getattr(part, "requires", None)
        if not callable(requires):
            continue
        for req in requires():
            unknown = [c for c in req.any_of if c not in CAPABILITY_NAMES]
            if unknown:
                raise ValueError(
                    f"{type(part).__name__}.requires() names unknown capabilities {unknown}; "
                    f"valid: {', '.join(sorted(CAPABILITY_NAMES))}"
                )
            out.append((path, str(getattr(part, "name", type(part).__name__)), req))
    return out


def thinking_requirements(
    root: Any, thinking: ThinkingBudget | None
) -> list[tuple[str, str, Requirement]]:
    """What a thinking budget needs on every role the chain ``root`` sends to."""
    if thinking is None:
        return []
    roles_of = getattr(root, "roles", None)
    roles = (set(roles_of()) if callable(roles_of) else set()) | {"default"}
    why = f"a thinking budget of {thinking.tokens} tokens per call"
    return [
        ("thinking_budget", "thinking_budget", Requirement.of(*THINKING, role=r, why=why))
        for r in sorted(roles)
    ]


THINKING = ("thinking_budget", "budget_forcing")
"""The ways a backend can bound thinking: its native knob, or Ponder's budget forcing."""


def has(caps: Capabilities, name: str) -> bool | None:
    """``caps``' value of capability ``name``; ``budget_forcing`` unknown is ``continuation``'s."""
    value = getattr(caps, name, None)
    if name == "budget_forcing" and value is None:
        return caps.continuation
    return value  # type: ignore[no-any-return]


async def missing_capabilities(
    root: Any, backends: Mapping[str, Backend], thinking: ThinkingBudget | None = None
) -> list[Missing]:
    """Every requirement of the chain ``root`` (and of a ``thinking`` budget on its calls) that
    the backend serving its role reports it lacks (``False``; an unknown ``None`` passes). A
    role without its own backend is served by ``"default"``, as in a run."""
    reqs = requirements(root) + thinking_requirements(root, thinking)
    if not reqs:
        return []
    known: dict[int, Capabilities] = {}
    out = []
    for path, name, req in reqs:
        backend = backends.get(req.role) or backends["default"]
        if id(backend) not in known:
            known[id(backend)] = await backend.capabilities()
        caps = known[id(backend)]
        if all(has(caps, c) is False for c in req.any_of):
            what = "the thinking budget" if path == "thinking_budget" else ""
            out.append(Missing(path, name, req, backend.name, what))
    return out


async def check_capabilities(
    root: Any, backends: Mapping[str, Backend], thinking: ThinkingBudget | None = None
) -> None:
    """Raise ``CapabilityMissing`` naming every missing capability of the chain ``root`` (see
    ``missing_capabilities``), before any call is made; return quietly otherwise."""
    missing = await missing_capabilities(root, backends, thinking)
    if missing:
        raise CapabilityMissing("; ".join(m.message() for m in missing))
