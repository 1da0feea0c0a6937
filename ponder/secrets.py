"""The one redactor: scrub keys from any text Ponder shows, relays or writes.

``redact(text, secrets)`` replaces each secret (4+ characters) with ``[redacted]``, and also any
*masked* form of it that upstreams print in auth errors (``sk-proj-****...abcd``: a word with a
run of mask characters that starts with the key's first 4 characters or ends with its last 4).
Used by the OpenAI-compatible and reward backends (their own key in upstream error details), the
proxy's error mapping, pass-through (every relayed body, stream line and header) and trace files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
_MASKED = re.compile(r"[^\s\"'`,;:()<>\[\]{}]*[*\u2022\u2026]{3,}[^\s\"'`,;:()<>\[\]{}]*")


def redact(text: str, secrets: Iterable[str | None]) -> str:
    keys = [s for s in secrets if s and len(s) >= 4]
    if not keys or not text:
        return text
    for key in keys:
        text = text.replace(key, REDACTED)
    if "*" in text or "\u2022" in text or "\u2026" in text:
        text = _MASKED.sub(lambda m: _mask(m.group(0), keys), text)
    return text


def _mask(word: str, keys: list[str]) -> str:
    for key in keys:
        if word.startswith(key[:4]) or word.endswith(key[-4:]):
            return REDACTED
    return word


def redact_bytes(data: bytes, secrets: Iterable[str | None]) -> bytes:
    """``redact`` for a relayed body; bytes that are not UTF-8 are scrubbed byte-wise."""
    keys = [s for s in secrets if s and len(s) >= 4]
    if not keys:
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        for key in keys:
            data = data.replace(key.encode(), REDACTED.encode())
        return data
    out = redact(text, keys)
    return data if out == text else out.encode("utf-8")
