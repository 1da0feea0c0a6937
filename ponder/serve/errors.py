"""Translate Ponder errors into OpenAI-format HTTP errors, at the proxy's one boundary.

Upstream authentication failures never carry the upstream's message (it may echo part of the key);
every other message is passed through ``redact`` so the upstream key cannot leak into a response.
"""

from __future__ import annotations

from collections.abc import Iterable

from ponder.errors import (
    AllSamplesFailed,
    AuthenticationFailed,
    BadRequestError,
    BudgetExhausted,
    CapabilityMissing,
    ConfigError,
    EndpointUnreachable,
    GenerationTimeout,
    InputError,
    PonderError,
    RateLimited,
    UpstreamServerError,
)
from ponder.serve.wire import ApiError

REDACTED = "[redacted]"


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, REDACTED)
    return text


def to_api_error(exc: BaseException, secrets: Iterable[str | None] = ()) -> ApiError:
    """The HTTP status and OpenAI error body for an exception raised by a chain run."""
    secrets = list(secrets)
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AllSamplesFailed) and exc.causes:
        # every sample failed for (usually) the same reason: answer as that reason would
        first = to_api_error(exc.causes[0], secrets)
        first.message = redact(f"{first.message} ({exc})", secrets)
        return first
    msg = redact(str(exc), secrets)
    if isinstance(exc, AuthenticationFailed):
        return ApiError(
            502,
            f"the upstream rejected the proxy's credentials (HTTP {exc.status}); "
            "check the upstream API key configured for ponder serve",
            type_="upstream_error",
            code="upstream_auth_failed",
        )
    if isinstance(exc, EndpointUnreachable):
        return ApiError(
            502, f"upstream unreachable: {msg}", type_="upstream_error", code="upstream_unreachable"
        )
    if isinstance(exc, GenerationTimeout):
        return ApiError(
            504, f"upstream timed out: {msg}", type_="upstream_error", code="upstream_timeout"
        )
    if isinstance(exc, RateLimited):
        return ApiError(
            503, f"upstream rate limit: {msg}", type_="upstream_error", code="upstream_rate_limited"
        )
    if isinstance(exc, UpstreamServerError):
        return ApiError(
            502, f"upstream error: {msg}", type_="upstream_error", code="upstream_server_error"
        )
    if isinstance(exc, BadRequestError):
        return ApiError(
            400, f"the upstream refused the request: {msg}", code="upstream_bad_request"
        )
    if isinstance(exc, CapabilityMissing):
        return ApiError(400, msg, code="capability_missing")
    if isinstance(exc, (InputError, ConfigError)):
        return ApiError(400, msg)
    if isinstance(exc, BudgetExhausted):
        return ApiError(
            400, f"the chain's token budget cannot fit one call: {msg}", code="budget_too_small"
        )
    if isinstance(exc, PonderError):
        return ApiError(500, f"{type(exc).__name__}: {msg}", type_="server_error")
    return ApiError(500, f"internal error: {type(exc).__name__}", type_="server_error")
