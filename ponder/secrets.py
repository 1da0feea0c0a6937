"""The one redactor: scrub keys and URL credentials from any text Ponder shows, relays or writes.

``redact(text, secrets)`` replaces each secret (4+ characters) with ``[redacted]``, and also any
*masked* form of it that upstreams print in auth errors (``sk-proj-****...abcd``: a word with a
run of mask characters that starts with the key's first 4 characters or ends with its last 4).
It also scrubs credentials written into URLs, whatever the secrets given: the userinfo of
``scheme://user:password@host`` and the values of secret-looking query parameters
(``?api_key=...``, ``&token=...``, ``sig``, ``secret``, ``password``, ...).
Used by the OpenAI-compatible and reward backends (their own key in upstream error details), the
proxy's error mapping, pass-through (every relayed body, stream line and header), trace files and
the proxy's log records (``redacting_logs``).

``url_secrets(url)`` gives the literal secrets a configured URL carries (its password, its
secret query values), so they are scrubbed wherever they appear; ``without_userinfo(url)`` is the
URL with ``user:password@`` removed (the form that may be shown or given to an HTTP client, which
would otherwise send it as Basic auth).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "[redacted]"
_MASKED = re.compile(r"[^\s\"'`,;:()<>\[\]{}]*[*\u2022\u2026]{3,}[^\s\"'`,;:()<>\[\]{}]*")
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^\s/?#@\"'`<>\\]+@")
SECRET_PARAM = re.compile(
    r"(?i)(?:key|token|secret|passw|pwd|sig|auth|credential|session|cookie|code)"
)
"""A query parameter whose name matches this carries a secret (``api_key``, ``api-key``,
``access_token``, ``sig``, ``X-Amz-Signature``, ``X-Amz-Credential``, ``password``, ...)."""
_QUERY_PARAM = re.compile(r"([?&;])([A-Za-z0-9_.\-\[\]]+)=([^&#\s\"'`<>\\]*)")
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s\"'`<>\\]+")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    if not text:
        return text
    text = _redact_keys(text, secrets)
    if "://" in text and "@" in text:
        text = _USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    if "=" in text and "://" in text:
        text = _URL.sub(lambda m: _redact_query(m.group(0)), text)
    return text


def _redact_keys(text: str, secrets: Iterable[str | None]) -> str:
    keys = [s for s in secrets if s and len(s) >= 4]
    if not keys or not text:
        return text
    for key in keys:
        text = text.replace(key, REDACTED)
    if "*" in text or "\u2022" in text or "\u2026" in text:
        text = _MASKED.sub(lambda m: _mask(m.group(0), keys), text)
    return text


def _redact_query(url: str) -> str:
    def one(m: re.Match[str]) -> str:
        sep, name, value = m.groups()
        if value and SECRET_PARAM.search(name):
            return f"{sep}{name}={REDACTED}"
        return m.group(0)

    return _QUERY_PARAM.sub(one, url)


def _mask(word: str, keys: list[str]) -> str:
    for key in keys:
        if word.startswith(key[:4]) or word.endswith(key[-4:]):
            return REDACTED
    return word


def redact_bytes(data: bytes, secrets: Iterable[str | None]) -> bytes:
    """For a relayed body: the keys and their masked forms only (a model's answer that shows a
    URL with credentials in it is the model's, not the proxy's, and is relayed as written);
    bytes that are not UTF-8 are scrubbed byte-wise."""
    keys = [s for s in secrets if s and len(s) >= 4]
    if not keys:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        for key in keys:
            data = data.replace(key.encode(), REDACTED.encode())
        return data
    out = _redact_keys(text, keys)
    return data if out == text else out.encode("utf-8")


def url_secrets(url: str | None) -> list[str]:
    """The secrets written into ``url``: the userinfo's password (or a lone user, which is how a
    token is often given) and the values of secret-looking query parameters, each as written
    and percent-decoded."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found: list[str] = []
    if "@" in parts.netloc:
        user, _, password = parts.netloc.rpartition("@")[0].partition(":")
        found.append(password or user)
    for m in _QUERY_PARAM.finditer("?" + parts.query):
        _, name, value = m.groups()
        if value and SECRET_PARAM.search(name):
            found.append(value)
    out: list[str] = []
    for s in found:
        for form in (s, unquote(s)):
            if form and form not in out:
                out.append(form)
    return out


def without_userinfo(url: str) -> str:
    """``url`` with any ``user:password@`` removed (unchanged when it has none)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


class RedactingFilter(logging.Filter):
    """A logging filter that runs every record's message through ``redact`` (HTTP clients log
    each request's full URL at INFO)."""

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001  (a malformed record is logging's business)
            return True
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        return True


LOGGERS_WITH_URLS = (
    "httpx",
    "httpx2",
    "openai",
    "openai._base_client",
    "ponder",
    "ponder.serve",
    "ponder.backends",
)
"""The loggers whose records can carry an upstream URL or error text (filters act on the logger
that makes a record, so each is named)."""


@contextlib.contextmanager
def redacting_logs(
    secrets: Iterable[str | None] = (), loggers: Iterable[str] = LOGGERS_WITH_URLS
) -> Iterator[RedactingFilter]:
    """Scrub ``secrets`` and URL credentials from the records of ``loggers`` for the block."""
    filt = RedactingFilter(secrets)
    names = list(loggers)
    for name in names:
        logging.getLogger(name).addFilter(filt)
    try:
        yield filt
    finally:
        for name in names:
            logging.getLogger(name).removeFilter(filt)
