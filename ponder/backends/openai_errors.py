"""What an OpenAI-compatible upstream's failure means, as a ``ponder.errors`` exception.

Use it where an ``openai``/``httpx`` exception (or a 200 whose body is not a completion) comes
back from a call: ``translate`` is the one boundary where SDK and transport errors become
``ponder.errors`` (timeouts, unreachable endpoints, status codes with their ``Retry-After`` and
``param``), with the API key redacted from every message; ``refuses_n`` tells a 400 that refused
``n`` > 1 itself from one about the prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import httpx
import openai

from ponder.errors import (
    BackendError,
    BadRequestError,
    EndpointUnreachable,
    GenerationTimeout,
    MalformedResponse,
    error_for_status,
    retry_after_s,
)
from ponder.secrets import redact

N_REFUSAL = re.compile(
    r"(\bn\b|\bn\s*[<>=!]|only one (completion )?choice|multiple (choices|completions)|"
    r"number of (choices|completions))",
    re.IGNORECASE,
)
"""What an upstream 400 says when it refuses ``n`` > 1 itself (llama.cpp: "Only one completion
choice is allowed"; others name the parameter ``n``)."""


def refuses_n(exc: BadRequestError) -> bool:
    """Whether a 400 refused ``n`` > 1 itself (not the prompt, the context length, ...)."""
    if exc.param == "n":
        return True
    return bool(N_REFUSAL.search(str(exc).split(": ", 1)[-1]))


def error_param(exc: openai.APIStatusError) -> str | None:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and isinstance(err.get("param"), str):
            return str(err["param"])
    return None


def error_detail(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])[:500]
    return str(exc.message)[:500]


def translate(
    exc: openai.OpenAIError, url: str, secrets: str | Iterable[str | None]
) -> BackendError:
    """The ``ponder.errors`` exception for an SDK failure calling ``url``, with ``secrets`` (the
    API key, and any written into the configured URL) scrubbed from the upstream's text."""
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    if isinstance(exc, openai.APITimeoutError):
        return GenerationTimeout(f"request to {url} timed out", url=url)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        text = redact(str(cause), keys)
        if isinstance(cause, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
            return BadRequestError(f"cannot call {url}: {text}", url=url)  # never retried
        return EndpointUnreachable(
            f"cannot reach the endpoint at {url} (tried POST {url}/chat/completions): {text}",
            url=url,
            # refused before anything was sent: nothing generated; a drop mid-call may have
            generated=not isinstance(cause, httpx.ConnectError),
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = redact(error_detail(exc), keys)
        after = retry_after_s(exc.response.headers)
        # the key and masked forms of it are redacted from detail
        return error_for_status(
            status, url, detail, url=url, retry_after_s=after, param=error_param(exc)
        )
    return BackendError(redact(f"call to {url} failed: {exc}", keys), url=url)


def malformed(url: str, exc: BaseException | None, resp: Any = None) -> MalformedResponse:
    """A 200 from ``url`` whose body is not a completion (``exc``: what reading it raised)."""
    what = f"{type(exc).__name__}: {exc}" if exc is not None else f"a {type(resp).__name__}"
    return MalformedResponse(
        f"{url} answered with a body that is not a completion ({what[:200]})",
        url=url,
        status=200,
    )
