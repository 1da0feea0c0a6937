"""OpenAI-format HTTP errors (``ApiError``), and the translation of Ponder errors into them at the
proxy's one boundary.

Every chain answers a cause the same way: ``AllSamplesFailed`` (a ``sample``/``adaptive``
chain whose samples all failed) is answered as its ``primary`` typed cause would be, so an
upstream 401, 429, 5xx or timeout gets the same status and code behind any chain. Upstream
authentication failures never carry the upstream's message (it may echo part of the key);
every other message is passed through ``ponder.secrets.redact`` so no key (nor a URL's
credentials) can leak into a response, and through ``hide_addresses``, so no client is told where
the upstream lives (a URL or ``host:port`` of a configured backend, or the one an error names, is
said as "the upstream"). A Retry-After the upstream sent is relayed.

Use ``ApiError`` for anything a route answers as an error itself (the app renders its ``body``
with its ``status`` and ``headers``); use ``to_api_error`` on whatever a chain run raised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from ponder.errors import (
    AllSamplesFailed,
    AuthenticationFailed,
    BackendError,
    BadRequestError,
    BudgetExhausted,
    BudgetTooSmall,
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

__all__ = [
    "REDACTED",
    "ApiError",
    "hide_addresses",
    "redact",
    "shutting_down_error",
    "to_api_error",
]

UPSTREAM = "the upstream"
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s\"'`<>\\)]+")


class ApiError(Exception):
    """An error answered in OpenAI's format: ``{"error": {"message", "type", "code", "param"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = dict(headers or {})
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "code": self.code,
                "param": self.param,
            }
        }


def _netloc(url: str) -> str | None:
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return None
    return netloc.rpartition("@")[2].lower() or None


def hide_addresses(text: str, addresses: Iterable[str | None]) -> str:
    """``text`` with every URL on a host of ``addresses`` (whatever its path or query), and
    every bare ``host:port`` of one, replaced by "the upstream"."""
    hosts = {h for a in addresses if a and (h := _netloc(a))}
    if not hosts or not text:
        return text
    text = _URL.sub(lambda m: UPSTREAM if _netloc(m.group(0)) in hosts else m.group(0), text)
    for host in sorted(hosts, key=len, reverse=True):
        if ":" in host or "." in host:
            text = re.sub(re.escape(host), UPSTREAM, text, flags=re.IGNORECASE)
    return text


def _urls_of(exc: BaseException | None) -> list[str]:
    """The upstream URLs an error (its primary cause, its causes) was raised for."""
    out: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        url = getattr(exc, "url", None)
        if isinstance(url, str):
            out.append(url)
        for cause in getattr(exc, "causes", None) or ():
            out += _urls_of(cause) if isinstance(cause, BaseException) else []
        exc = getattr(exc, "primary", None) or exc.__cause__
    return out


def shutting_down_error() -> ApiError:
    """What a run the server's shutdown cancelled answers (JSON 503, or a stream's last event)."""
    return ApiError(
        503,
        "ponder serve is shutting down; retry against another instance or later",
        type_="server_error",
        code="shutting_down",
        headers={"retry-after": "5"},
    )


def to_api_error(
    exc: BaseException, secrets: Iterable[str | None] = (), addresses: Iterable[str | None] = ()
) -> ApiError:
    """The HTTP status and OpenAI error body for an exception raised by a chain run; no text of
    it names ``secrets`` or an internal address (``addresses``, and any URL the error names)."""
    err = _to_api_error(exc, list(secrets))
    err.message = hide_addresses(err.message, [*addresses, *_urls_of(exc)])
    return err


def _to_api_error(exc: BaseException, secrets: list[str | None]) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, AllSamplesFailed) and exc.causes:
        # every sample failed for (usually) the same reason: answer as that reason would, with
        # counts by type (never the other causes' upstream text)
        first = _to_api_error(exc.primary, secrets)
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


_UPSTREAM_ERR = "upstream_error"
_INVALID = "invalid_request_error"
_BUDGET = "budget_too_small"
_Answer = tuple[type[Exception] | tuple[type[Exception], ...], int, str, str, str | None]
_ANSWERS: tuple[_Answer, ...] = (
    # (error types, status, message prefix, type, code): the first row that matches answers
    (EndpointUnreachable, 502, "upstream unreachable: ", _UPSTREAM_ERR, "upstream_unreachable"),
    (GenerationTimeout, 504, "upstream timed out: ", _UPSTREAM_ERR, "upstream_timeout"),
    (RateLimited, 503, "upstream rate limit: ", _UPSTREAM_ERR, "upstream_rate_limited"),
    (UpstreamServerError, 502, "upstream error: ", _UPSTREAM_ERR, "upstream_server_error"),
    (BadRequestError, 400, "the upstream refused the request: ", _INVALID, "upstream_bad_request"),
    (CapabilityMissing, 400, "", _INVALID, "capability_missing"),
    ((InputError, ConfigError), 400, "", _INVALID, None),
    (BudgetTooSmall, 400, "", _INVALID, _BUDGET),  # says what one call needs
    (BudgetExhausted, 400, "the chain's token budget cannot fit one call: ", _INVALID, _BUDGET),
    (NoAnswer, 502, "the upstream model gave no answer: ", _UPSTREAM_ERR, "no_answer"),
    (BackendError, 502, "upstream error: ", _UPSTREAM_ERR, "upstream_error"),
)
"""How ``to_api_error`` answers each typed failure (after a chain timeout and an upstream that
refused the proxy's key, which say more)."""


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
    for types, status, prefix, type_, code in _ANSWERS:
        if isinstance(exc, types):
            return ApiError(status, f"{prefix}{msg}", type_=type_, code=code)
    if isinstance(exc, PonderError):
        return ApiError(
            500, f"{type(exc).__name__}: {msg}", type_="server_error", code="ponder_error"
        )
    return ApiError(
        500, f"internal error: {type(exc).__name__}", type_="server_error", code="internal_error"
    )
