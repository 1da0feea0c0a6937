"""Telling a reasoning model's thinking from its answer when both come in one text.

Servers with a reasoning parser send the thinking apart (``reasoning_content`` or ``reasoning``);
without one, the model's own markers are in the content: ``<think>…</think>answer`` (DeepSeek-R1,
Qwen3, QwQ), or ``…</think>answer`` when the chat template opened the thinking in the prompt.
These pure functions split such a text, whole (``split_thinking``) or as it streams
(``ThinkingSplitter``: a marker may be cut across chunks); ``split_inline`` applies it to a
completion's choices (``Choice.reasoning``). Rules, the same in both:

- thinking is recognized only where the text *starts* with the opening marker (leading
  whitespace allowed), or, for a whole text, where a closing marker comes with no opening one
  before it (the template opened it); a stream whose template opened it says so with
  ``starts_thinking=True``. A marker anywhere else is answer text;
- the thinking ends at the first closing marker; everything after it is the answer (one block);
- whitespace around the thinking, and at the start of the answer after it, is dropped;
- a text with no thinking is returned unchanged as the answer (``thinking`` is ``None``);
- an unclosed thinking (cut at ``max_tokens``) is all thinking, with an empty answer;
- an empty thinking block (``<think>\\n\\n</think>``, Qwen3's non-thinking mode) is no thinking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ponder.protocol.requests import Choice, GenerationRequest

Markers = tuple[str, str]
DEFAULT_MARKERS: Markers = ("<think>", "</think>")


def check_markers(markers: tuple[str, ...] | list[str]) -> Markers:
    """``markers`` as an (open, close) pair; a ``ValueError`` unless both are non-empty and
    different."""
    if len(markers) != 2 or not all(isinstance(m, str) and m for m in markers):
        raise ValueError("thinking markers are two non-empty strings: [open, close]")
    if markers[0] == markers[1]:
        raise ValueError("the opening and closing thinking markers must differ")
    return markers[0], markers[1]


@dataclass(frozen=True)
class Split:
    """A text's thinking (``None`` when it had none) and its answer."""

    thinking: str | None
    answer: str


def _held_prefix(text: str, marker: str) -> int:
    """The length of the longest end of ``text`` that begins ``marker`` (a marker that may be
    completed by the next chunk)."""
    for k in range(min(len(text), len(marker) - 1), 0, -1):
        if marker.startswith(text[-k:]):
            return k
    return 0


class ThinkingSplitter:
    """Splits a streamed text into thinking and answer as it arrives.

    ``feed(chunk)`` returns the ``(thinking, answer)`` text that is certain so far (either may
    be ``""``); ``finish()`` returns the rest once the text is complete. Text that could still
    turn out to be a marker, or whitespace that may be trimmed, is held until it is certain.
    Joining every ``feed`` and ``finish`` result gives ``split_thinking`` of the whole text
    (except the whole-text-only case of a closing marker with no opening one).
    """

    def __init__(self, markers: Markers = DEFAULT_MARKERS, *, starts_thinking: bool = False):
        self.open, self.close = check_markers(markers)
        self._state = "thinking_start" if starts_thinking else "start"
        self._pending = ""  # text not yet classified
        self._space = ""  # whitespace inside the thinking, held until more thinking follows
        self.saw_thinking = starts_thinking
        """Whether the text opened a thinking block (or was declared to start in one)."""
        self.thinking_text = ""
        """All the thinking given out so far."""

    def feed(self, chunk: str) -> tuple[str, str]:
        self._pending += chunk
        return self._drain(final=False)

    def finish(self) -> tuple[str, str]:
        return self._drain(final=True)

    def _drain(self, final: bool) -> tuple[str, str]:
        thinking: list[str] = []
        answer: list[str] = []
        while True:
            p = self._pending
            if self._state == "start":
                body = p.lstrip()
                if body.startswith(self.open):
                    self._pending = body[len(self.open) :]
                    self._state = "thinking_start"
                    self.saw_thinking = True
                    continue
                if not final and (not body or self.open.startswith(body)):
                    break  # only whitespace, or what may become the marker: wait
                self._state = "answer"
                continue
            if self._state == "answer":
                answer.append(p)
                self._pending = ""
                break
            if self._state == "answer_start":
                body = p.lstrip()
                if body or final:
                    self._pending = body
                    self._state = "answer"
                    continue
                self._pending = ""
                break
            if self._state == "thinking_start":
                body = p.lstrip()
                self._pending = body
                if not body and not final:
                    break
                self._state = "thinking"
                continue
            # thinking
            at = p.find(self.close)
            if at >= 0:
                text = p[:at].rstrip()
                if text:
                    thinking.append(self._space + text)
                self._space = ""
                self._pending = p[at + len(self.close) :]
                self._state = "answer_start"
                continue
            keep = 0 if final else _held_prefix(p, self.close)
            text = p[: len(p) - keep]
            self._pending = p[len(p) - keep :]
            body = text.rstrip()
            if body:
                thinking.append(self._space + body)
                self._space = text[len(body) :]
            else:
                self._space += text
            if final:
                self._space = ""
            break
        out = "".join(thinking)
        self.thinking_text += out
        return out, "".join(answer)


def split_thinking(
    text: str, markers: Markers = DEFAULT_MARKERS, *, starts_thinking: bool = False
) -> Split:
    """The thinking and the answer of a whole text (see the module doc for the rules)."""
    open_, close = check_markers(markers)
    if not starts_thinking and not text.lstrip().startswith(open_):
        at = text.find(close)
        if at < 0 or 0 <= text.find(open_) < at:
            return Split(None, text)
        starts_thinking = True  # "…</think>answer": the template opened the thinking
    splitter = ThinkingSplitter((open_, close), starts_thinking=starts_thinking)
    t1, a1 = splitter.feed(text)
    t2, a2 = splitter.finish()
    if not splitter.saw_thinking:
        return Split(None, text)
    return Split(t1 + t2 or None, a1 + a2)


def joined(thinking: str | None, answer: str, markers: Markers = DEFAULT_MARKERS) -> str:
    """The text a model generated for ``thinking`` and ``answer``, markers included (what its
    tokens were spent on, for counting)."""
    if not thinking:
        return answer
    return f"{markers[0]}\n{thinking}\n{markers[1]}\n\n{answer}"


def split_inline(
    request: GenerationRequest, choices: list[Choice], markers: Markers | None
) -> None:
    """Split inline thinking (``markers``, e.g. ``<think>…</think>``) off the text of each chat
    choice whose thinking did not come apart. Not for raw completions or continuations of an
    ``assistant_prefix`` (nor a chat ending in an assistant message, prefilled): their text
    continues a prefix whose state (inside the thinking or not) only the caller knows
    (``split_thinking(..., starts_thinking=...)``). ``markers=None`` turns it off."""
    if markers is None or not request.is_chat or request.assistant_prefix is not None:
        return
    if request.messages and request.messages[-1].get("role") == "assistant":
        return  # a prefilled continuation of that message
    for ch in choices:
        if ch.reasoning is not None:
            continue
        parts = split_thinking(ch.text, markers)
        ch.text, ch.reasoning = parts.answer, parts.thinking
