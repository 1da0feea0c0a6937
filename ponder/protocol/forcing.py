"""Budget forcing: after a call cut at its thinking share, the continuation that makes the model
answer, and the two calls' choices joined as one.

Use it where a thinking budget is enforced by continuation (``ponder.orchestrator.thinking_bound``);
it is pure:

- ``forcing_step``: after a call cut at that length, the continuation that makes the model answer:
  an unclosed thinking gets the closing marker appended and the model continues after it (budget
  forcing, as in s1); an answer that was already under way just continues; a thinking the model
  ended itself without closing it (no answer) is closed the same way; ``None`` when the call
  finished with an answer;
- ``forced_choice``: the cut call's choice and its continuation's, as one choice (the thinking of
  the first, the answer of both, every token counted once). A model that writes the closing
  marker again after Ponder closed its thinking was still thinking: the answer is what follows
  the last one (the tokens before it stay counted, as answer tokens).

A thinking that closed on the very last token of its share looks the same as one cut there (the
answer is empty in both), so it is reported cut; the continuation is the same either way.

``lead`` (a thinking setting, ``answer_lead``: empty unless set) is written after the closing
marker when Ponder closes a thinking, as s1 writes "Final Answer:": a prompted model that stops or
rambles after ``</think>`` then writes its answer (``The final answer is \\boxed{``). The joined
choice's text starts with it, so the answer is read from lead and continuation together.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TypeVar

from ponder.protocol.requests import Choice, GenerationRequest
from ponder.protocol.thinking import DEFAULT_MARKERS, Markers, joined

_T = TypeVar("_T")


@dataclass(frozen=True)
class ForcingStep:
    """The continuation to ask for: ``request`` (the original request with ``assistant_prefix``
    = what was generated, the thinking closed) and whether the thinking was cut at its share
    (rather than the answer, which just continues, or a thinking the model ended unclosed)."""

    request: GenerationRequest
    cut: bool


def forcing_step(
    request: GenerationRequest,
    choice: Choice,
    max_tokens: int,
    markers: Markers = DEFAULT_MARKERS,
    lead: str = "",
) -> ForcingStep | None:
    """The continuation after ``choice`` of the first call of ``request`` (``max_tokens``: the
    request's own, the hard bound of the whole choice), or ``None`` when there is none to make:
    the call finished with an answer, nothing is left of ``max_tokens``, or the thinking was
    hidden (no text to continue). ``cut``: the thinking reached its share (not ended by the
    model)."""
    thinking, answer = choice.reasoning, choice.text
    unclosed = bool(thinking) and not answer
    if choice.finish_reason != "length" and not unclosed:
        return None
    left = max_tokens - choice.completion_tokens
    if left < 1:
        return None
    if not thinking and not answer:
        return None  # hidden reasoning (only its token count came back): nothing to continue
    cut = unclosed and choice.finish_reason == "length"
    # "<think>\n…\n</think>\n\n" + the answer so far; without thinking the answer continues
    prefix = joined(thinking, answer, markers) if thinking else answer
    if unclosed:  # Ponder closes the thinking: the answer lead follows the marker
        prefix += lead
    nxt = replace(request, assistant_prefix=prefix).with_params(
        n=1, max_tokens=left, seed=choice.seed if choice.seed is not None else request.params.seed
    )
    return ForcingStep(replace(nxt, min_n=None), cut)


def forced_choice(
    first: Choice,
    rest: Choice | None,
    cut: bool,
    markers: Markers = DEFAULT_MARKERS,
    lead: str = "",
) -> Choice:
    """``first`` (cut at its share) and its continuation ``rest`` as one choice: ``first``'s
    thinking, the answer so far plus ``rest``'s text (after its last closing marker, if it wrote
    one), their tokens and logprobs added; a thinking Ponder closed answers ``lead`` + ``rest``'s
    text (the lead ``forcing_step`` wrote). ``rest`` ``None`` (the continuation failed or was not
    made) keeps ``first`` as it is."""
    if rest is None:
        return replace(first, thinking_bound="forcing", thinking_cut=cut)
    if first.text:
        text = first.text + rest.text
    else:
        text = lead + rest.text if lead else rest.text.lstrip()
    if not first.text and markers[1] in text:  # it went on thinking after Ponder closed it
        text = text.rsplit(markers[1], 1)[1].lstrip() or text
    return replace(
        first,
        text=text,
        finish_reason=rest.finish_reason,
        completion_tokens=first.completion_tokens + rest.completion_tokens,
        token_logprobs=_joined(first.token_logprobs, rest.token_logprobs),
        top_logprobs=_joined(first.top_logprobs, rest.top_logprobs),
        tool_calls=rest.tool_calls,
        tool_calls_from_text=rest.tool_calls_from_text,
        reasoning_tokens=first.reasoning_tokens,
        thinking_bound="forcing",
        thinking_cut=cut,
    )


def _joined(a: list[_T] | None, b: list[_T] | None) -> list[_T] | None:
    return a + b if a is not None and b is not None else None
