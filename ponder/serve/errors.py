"""Translate Ponder errors into OpenAI-format HTTP errors, at the proxy's one boundary.

Every chain answers a cause the same way: ``AllSamplesFailed`` (a ``sample``/``adaptive``
chain whose samples all failed) is answered as its ``primary`` typed cause would be, so an
upstream 401, 429, 5xx or timeout gets the same status and code behind any chain. Upstream
authentication failures never carry the upstream's message (it may echo part of the key);
every other message is passed through ``ponder.secrets.redact`` so no key can leak into a
response. A Retry-After the upstream sent is relayed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ponder.errors import (
    AllSamplesFailed,
    AuthenticationFailed,
    BackendError,
    BadRequestError,
    BudgetExhausted,
    CapabilityMissing,
    ConfigError,
    EndpointUnreachable,
    GenerationTimeout,
    InputError,
    NoAnswer,
    PonderError,
    RateLimited,
    RunTimeout,
    UpstreamServerError,
)
from ponder.secrets import REDACTED, redact
from ponder.serve.wire import ApiError

__all__ = ["REDACTED", "redact", "shutting_down_error", "to_api_error"]


def shutting_down_error() -> ApiError:
    """What a run the server's shutdown cancelled answers (JSON 503, or a stream's last event)."""
    return ApiError(
        503,
        "ponder serve is shutting down; retry against another instance or later",
        type_="server_error",
        code="shutting_down",
        headers={"retry-after": "5"},
    )


def to_api_error(exc: BaseException, secrets: Iterable[str | None] = ()) -> ApiError:
    """The HTTP status and OpenAI error body for an exception raised by a chain run."""
    secrets = list(secrets)
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AllSamplesFailed) and exc.causes:
        # every sample failed for (usually) the same reason: answer as that reason would, with
        # counts by type (never the other causes' upstream text)
        first = to_api_error(exc.primary, secrets)
        first.message = f"{first.message} ({exc.summary()})"
        return first
    err = _mapped(exc, secrets)
    if (
        isinstance(exc, BackendError)
        and exc.retry_after_s is not None
        and err.status
        in (
            429,
            503,
        )
    ):
        err.headers["retry-after"] = str(max(1, math.ceil(exc.retry_after_s)))
    return err


def _mapped(exc: BaseException, secrets: list[str | None]) -> ApiError:
    msg = redact(str(exc), secrets)
    if isinstance(exc, RunTimeout):
        return ApiError(
            504,
            f"the chain did not finish within {exc.timeout_s:g}s",
            type_="upstream_error",
            code="chain_timeout",
        )
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
    if isinstance(exc, NoAnswer):
        return ApiError(
            502,
            f"the upstream model gave no answer: {msg}",
            type_="upstream_error",
            code="no_answer",
        )
    if isinstance(exc, BackendError):
        return ApiError(
            502, f"upstream error: {msg}", type_="upstream_error", code="upstream_error"
        )
    if isinstance(exc, PonderError):
        return ApiError(
            500, f"{type(exc).__name__}: {msg}", type_="server_error", code="ponder_error"
        )
    return ApiError(
        500, f"internal error: {type(exc).__name__}", type_="server_error", code="internal_error"
    )
