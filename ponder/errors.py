"""Every error Ponder raises, in one small tree.

Upstream failures (HTTP status codes, connection errors, SDK exceptions) are translated into this
tree at one boundary, the backend that talked to the upstream (an HTTP status through the one
map, ``error_for_status``); nothing above a backend sees an ``openai`` or ``httpx`` exception.

::

    PonderError
    ├── ConfigError                 a config names a bad field or value (carries ``field``)
    │   └── UnknownNameError        a registry lookup failed (carries the valid ``choices``)
    ├── PromptError                 a template is missing, malformed or uses undefined variables
    ├── InputError                  bad user input (an empty question, an unreadable file)
    ├── BackendError                a generation or reward call failed (``url``, ``status``,
    │   │                           ``retryable``, ``retry_after_s``, ``param``, ``generated``)
    │   ├── EndpointUnreachable     nothing answered at the URL (connection refused, DNS, ...)
    │   ├── AuthenticationFailed    401/403 from the upstream; never retried, never its text
    │   ├── BadRequestError         another 4xx: the request itself is wrong; never retried
    │   ├── RateLimited             429; retried with backoff (at least its Retry-After)
    │   ├── UpstreamServerError     5xx; retried with backoff
    │   │   └── MalformedResponse   a 200 whose body is not the expected JSON; retried
    │   ├── GenerationTimeout       the upstream did not answer in time; retried
    │   └── CapabilityMissing       the backend cannot do what a strategy needs (says which)
    ├── LocalModelError             the embedded local model could not be prepared or run
    │   ├── BuildError              building llama-server failed
    │   ├── ModelIntegrityError     an assembled model file has the wrong sha256; it is refused
    │   ├── ServerStartError        llama-server did not become healthy (carries its log tail)
    │   └── ServerDiedError         llama-server or the vLLM engine died while a run used it
    ├── BudgetExhausted             the run's token budget cannot fit another call
    │   └── BudgetTooSmall          it cannot fit even one call: raised by the run, saying what
    │                               one call needs (``budget_tokens``, ``needed_tokens``)
    ├── RunTimeout                  a run passed its ``timeout_s`` (also a ``TimeoutError``)
    ├── ToolTimeout                 a tool call passed the engine's ``tool_timeout_s`` (the
    │                               model reads it as an ``error:`` tool result)
    ├── NoAnswer                    a sample finished without an extractable answer
    ├── MissingExtraError           an optional extra (ponder[vllm]) is missing; an ImportError
    ├── ClusterError                a Ray job failed as a whole (workers that cannot start)
    └── AllSamplesFailed            every sample of a parallel strategy failed (carries ``causes``,
                                    the typed exceptions, never strings; ``primary`` is the one
                                    to answer with)

Failures travel as these exception objects all the way up (a failed sample's ``Outcome.error``,
``AllSamplesFailed.causes``), so the proxy and the CLI answer an upstream 401 behind a ``sample``
chain exactly as behind ``cot``.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping, Sequence


class PonderError(Exception):
    """Base class of every error Ponder raises."""


class ConfigError(PonderError):
    """A configuration value is invalid. ``field`` is a dotted path to the offending field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


class UnknownNameError(ConfigError):
    """A name was looked up in a registry and not found; the message lists the valid names."""

    def __init__(self, field: str, kind: str, name: str, choices: Sequence[str]) -> None:
        self.kind = kind
        self.name = name
        self.choices = sorted(choices)
        valid = ", ".join(self.choices) or "(none registered)"
        super().__init__(field, f"unknown {kind} {name!r}; valid choices: {valid}")


class PromptError(PonderError):
    """A prompt template is missing, cannot be parsed, or renders with undefined variables."""


class InputError(PonderError):
    """The user's input cannot be used as given (for example an empty question)."""


class BackendError(PonderError):
    """A call to a backend (generation or reward model) failed.

    ``retryable`` tells the orchestrator's retry policy whether trying again can help.
    ``generated`` is true when the upstream may have generated tokens before the failure (a
    timeout, a dropped connection, a malformed body): the budget charges such an attempt in full.
    ``retry_after_s`` is the upstream's Retry-After, when it sent one; ``param`` the request
    parameter an upstream 400 named.
    """

    retryable: bool = False
    generated: bool = False

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after_s: float | None = None,
        param: str | None = None,
        generated: bool | None = None,
    ) -> None:
        self.url = url
        self.status = status
        self.retry_after_s = retry_after_s
        self.param = param
        if generated is not None:
            self.generated = generated
        super().__init__(message)


class EndpointUnreachable(BackendError):
    """No connection to the endpoint (refused, DNS, reset); the URL says which."""

    retryable = True


class AuthenticationFailed(BackendError):
    """The endpoint refused the key (401/403): fix the key, retrying cannot help."""


class BadRequestError(BackendError):
    """The endpoint refused the request itself (400/404/422); ``param`` names the field."""


class RateLimited(BackendError):
    """429: retried after ``retry_after_s`` when the endpoint says how long."""

    retryable = True


class UpstreamServerError(BackendError):
    """A 5xx from the endpoint: retried."""

    retryable = True


class MalformedResponse(UpstreamServerError):
    """The upstream answered 200 with a body that is not the completion JSON it should be."""

    generated = True


class GenerationTimeout(BackendError):
    """The call ran past its timeout; the endpoint may have generated (and billed) tokens."""

    retryable = True
    generated = True


class CapabilityMissing(BackendError):
    """The backend cannot do what the request needs (continuation, logprobs, n, ...)."""


def error_for_status(
    status: int,
    upstream: str,
    detail: str,
    *,
    url: str | None = None,
    retry_after_s: float | None = None,
    param: str | None = None,
) -> BackendError:
    """The one map from an upstream's HTTP error status to this tree (every backend uses it).

    ``upstream`` names it in the message ("http://host/v1", "the reward model at ..."); ``detail``
    is the upstream's message, already redacted. A gateway's 502/504 may come while the server
    behind it generated (``generated``); a 500/503 is taken as refused before generating."""
    if status in (401, 403):
        return AuthenticationFailed(
            f"{upstream} rejected the API key (HTTP {status}): {detail}", url=url, status=status
        )
    if status == 429:
        return RateLimited(
            f"{upstream} rate-limited the request: {detail}",
            url=url,
            status=429,
            retry_after_s=retry_after_s,
        )
    if status >= 500:
        return UpstreamServerError(
            f"{upstream} failed with HTTP {status}: {detail}",
            url=url,
            status=status,
            retry_after_s=retry_after_s,
            generated=status in (502, 504),
        )
    return BadRequestError(
        f"{upstream} refused the request (HTTP {status}): {detail}",
        url=url,
        status=status,
        param=param,
    )


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The Retry-After (seconds or an HTTP date, or ``retry-after-ms``), in seconds."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class LocalModelError(PonderError):
    """The embedded local model (llama-server + GGUF) could not be prepared or run."""


class BuildError(LocalModelError):
    pass


class ModelIntegrityError(LocalModelError):
    pass


class ServerStartError(LocalModelError):
    pass


class ServerDiedError(LocalModelError, BackendError):
    """llama-server or the vLLM engine died mid-run. Also a ``BackendError`` so a call fails,
    but never retried."""

    retryable = False

    def __init__(self, message: str) -> None:
        BackendError.__init__(self, message)


class BudgetExhausted(PonderError):
    """The run's token budget has no room for another call (the call is refused; the run returns
    the best answer so far, marked ``budget_limited``)."""


class BudgetTooSmall(BudgetExhausted):
    """The whole budget cannot fit one call, even with nothing spent: ``needed_tokens`` is the
    least that call needs (its prompt, as reserved, and ``MIN_COMPLETION_TOKENS`` of completion
    per choice). A run whose budget refused its first call this way, and so made none, raises it
    rather than answer empty (the proxy answers it 400 ``budget_too_small``)."""

    def __init__(
        self, budget_tokens: int, needed_tokens: int, detail: str = "", full_tokens: int = 0
    ) -> None:
        self.budget_tokens = budget_tokens
        self.needed_tokens = needed_tokens
        self.full_tokens = full_tokens
        full = f"; {full_tokens} at its full max_tokens" if full_tokens > needed_tokens else ""
        why = f" ({detail}{full})" if detail else ""
        super().__init__(
            f"the token budget of {budget_tokens} cannot fit one call: it needs at least "
            f"{needed_tokens} tokens{why}; raise the budget or lower max_tokens"
        )


class RunTimeout(PonderError, TimeoutError):
    """A run did not finish within its ``timeout_s``; in-flight calls were cancelled."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        super().__init__(f"the run did not finish within {timeout_s:g}s")


class ToolTimeout(PonderError, TimeoutError):
    """A tool call the engine performed (``CallTool``) did not return within its timeout."""

    def __init__(self, name: str, timeout_s: float) -> None:
        self.name = name
        self.timeout_s = timeout_s
        super().__init__(f"tool {name!r} did not return within {timeout_s:g}s")


class NoAnswer(PonderError):
    """A sample finished (``finish_reason``) but no final answer could be extracted from it."""

    def __init__(self, finish_reason: str | None = None) -> None:
        self.finish_reason = finish_reason
        cut = " (cut off at max_tokens)" if finish_reason == "length" else ""
        super().__init__(f"no extractable answer{cut}")


class ToolNotOffered(NoAnswer):
    """A sample called a tool the request did not offer: it casts no vote."""

    def __init__(self, name: str | None, offered: set[str]) -> None:
        self.name = name
        self.finish_reason = "tool_calls"
        valid = ", ".join(sorted(offered)) or "none"
        PonderError.__init__(
            self, f"called tool {name!r}, which the request did not offer (offered: {valid})"
        )


class AllSamplesFailed(PonderError):
    """Every sample failed; ``causes`` holds each sample's error, as the typed exception."""

    def __init__(self, causes: Sequence[BaseException]) -> None:
        self.causes = list(causes)
        first = self.primary
        super().__init__(f"{self.summary()}; first: {type(first).__name__}: {first}")

    @property
    def primary(self) -> BaseException:
        """The cause to answer with: the first that is not a mere ``NoAnswer``."""
        for c in self.causes:
            if not isinstance(c, NoAnswer):
                return c
        return self.causes[0] if self.causes else NoAnswer()

    def summary(self) -> str:
        """Counts by error type, with no upstream text (safe to show a client)."""
        counts: dict[str, int] = {}
        for c in self.causes:
            counts[type(c).__name__] = counts.get(type(c).__name__, 0) + 1
        parts = ", ".join(f"{n} x {k}" for k, n in counts.items())
        return f"all {len(self.causes)} samples failed ({parts})"


class MissingExtraError(PonderError, ImportError):
    """An optional dependency is not installed; the message says what to ``pip install``."""


class ClusterError(PonderError):
    """A run on a Ray cluster failed as a whole (``ponder.scale``): its workers could not start
    or the cluster was lost. Items already written stay; a rerun resumes."""
