"""Every error Ponder raises, in one small tree.

Upstream failures (HTTP status codes, connection errors, SDK exceptions) are translated into this
tree at one boundary, the backend that talked to the upstream; nothing above a backend sees an
``openai`` or ``httpx`` exception.

::

    PonderError
    ├── ConfigError                 a config names a bad field or value (carries ``field``)
    │   └── UnknownNameError        a registry lookup failed (carries the valid ``choices``)
    ├── PromptError                 a template is missing, malformed or uses undefined variables
    ├── InputError                  bad user input (an empty question, an unreadable file)
    ├── BackendError                a generation or reward call failed (``url``, ``retryable``)
    │   ├── EndpointUnreachable     nothing answered at the URL (connection refused, DNS, ...)
    │   ├── AuthenticationFailed    401/403 from the upstream; never retried
    │   ├── BadRequestError         another 4xx: the request itself is wrong; never retried
    │   ├── RateLimited             429; retried with backoff
    │   ├── UpstreamServerError     5xx; retried with backoff
    │   ├── GenerationTimeout       the upstream did not answer in time; retried
    │   └── CapabilityMissing       the backend cannot do what a strategy needs (says which)
    ├── LocalModelError             the embedded local model could not be prepared or run
    │   ├── BuildError              building llama-server failed
    │   ├── ModelIntegrityError     an assembled model file has the wrong sha256; it is refused
    │   ├── ServerStartError        llama-server did not become healthy (carries its log tail)
    │   └── ServerDiedError         llama-server or the vLLM engine died while a run used it
    ├── BudgetExhausted             the run's token budget cannot fit another call
    ├── MissingExtraError           an optional extra (ponder[vllm]) is missing; an ImportError
    └── AllSamplesFailed            every sample of a parallel strategy failed (carries ``causes``)
"""

from __future__ import annotations

from collections.abc import Sequence


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
    """

    retryable: bool = False

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class EndpointUnreachable(BackendError):
    retryable = True


class AuthenticationFailed(BackendError):
    retryable = False


class BadRequestError(BackendError):
    retryable = False


class RateLimited(BackendError):
    retryable = True


class UpstreamServerError(BackendError):
    retryable = True


class GenerationTimeout(BackendError):
    retryable = True


class CapabilityMissing(BackendError):
    retryable = False


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
    """The run's token budget has no room for another call."""


class AllSamplesFailed(PonderError):
    """Every sample failed; ``causes`` holds each sample's error."""

    def __init__(self, causes: Sequence[BaseException]) -> None:
        self.causes = list(causes)
        lines = "; ".join(f"{type(c).__name__}: {c}" for c in self.causes[:8])
        more = f" (+{len(self.causes) - 8} more)" if len(self.causes) > 8 else ""
        super().__init__(f"all {len(self.causes)} samples failed: {lines}{more}")


class MissingExtraError(PonderError, ImportError):
    """An optional dependency is not installed; the message says what to ``pip install``."""
