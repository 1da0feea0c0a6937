"""A scripted backend for unit tests — yours and ours. No network, no event-loop tricks.

Continuation requests (``assistant_prefix``) are answered like any other; pass
``capabilities=Capabilities(continuation=False)`` to make them fail with ``CapabilityMissing``.

Use ``FakeBackend(["text 1", "text 2"])`` to answer calls in order, or
``FakeBackend(lambda request, i: ...)`` to compute each choice; a script item (or a function's
return value) that is an exception is raised instead, to test failure paths.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from ponder.backends.base import Backend, Capabilities
from ponder.errors import CapabilityMissing
from ponder.protocol.requests import Choice, Completion, GenerationRequest

Responder = Callable[[GenerationRequest, int], Any]


def _words(text: str) -> int:
    return max(1, len(text.split()))


class FakeBackend(Backend):
    """Answers from a script. Token counts are whitespace words, so tests can predict them.

    ``requests`` records every request received, in order.
    """

    name = "fake"

    def __init__(
        self,
        script: Iterable[Any] | Responder,
        *,
        delay_s: float = 0.0,
        capabilities: Capabilities | None = None,
    ) -> None:
        self._responder: Responder | None = script if callable(script) else None
        self._script: list[Any] = [] if callable(script) else list(script)
        self._next = 0
        self.delay_s = delay_s
        self.requests: list[GenerationRequest] = []
        self._caps = capabilities or Capabilities(
            native_n=True, logprobs=True, exact_token_count=True
        )
        self.closed = False

    def _produce(self, request: GenerationRequest, index: int) -> Any:
        if self._responder is not None:
            return self._responder(request, index)
        if self._next >= len(self._script):
            raise AssertionError(f"FakeBackend script exhausted after {self._next} answers")
        item = self._script[self._next]
        self._next += 1
        return item

    async def generate(self, request: GenerationRequest) -> Completion:
        self.requests.append(request)
        if request.assistant_prefix is not None and self._caps.continuation is False:
            raise CapabilityMissing(
                "the fake backend was configured without capability 'continuation' "
                "(continuing a partial assistant message)"
            )
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        choices = []
        for i in range(request.params.n):
            item = self._produce(request, i)
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Choice):
                choices.append(item)
                continue
            text = str(item)
            tokens = _words(text)
            finish = "stop"
            if tokens > request.params.max_tokens:
                text = " ".join(text.split()[: request.params.max_tokens])
                tokens, finish = request.params.max_tokens, "length"
            seed = None if request.params.seed is None else request.params.seed + i
            choices.append(
                Choice(
                    text=text,
                    finish_reason=finish,
                    completion_tokens=tokens,
                    token_logprobs=[-0.1] * tokens if request.params.logprobs else None,
                    seed=seed,
                )
            )
        prompt_tokens = await self.count_prompt_tokens(request)
        return Completion(choices=choices, prompt_tokens=prompt_tokens, calls=1, model="fake")

    async def count_tokens(self, text: str) -> int:
        return _words(text)

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        if request.prompt is not None:
            return _words(request.prompt)
        prefix = _words(request.assistant_prefix) if request.assistant_prefix else 0
        return prefix + sum(_words(str(m.get("content") or "")) for m in request.messages or ())

    async def prompt_billed_once(self, request: GenerationRequest) -> bool:
        return True  # one call per request, its prompt counted once (below)

    async def capabilities(self) -> Capabilities:
        return self._caps

    async def aclose(self) -> None:
        self.closed = True
