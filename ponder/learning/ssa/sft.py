"""Supervised pairs for SSA training, tokenized exactly as inference renders the prompt.

Use ``training_pairs(rows)`` on the rows ``ponder ssa rft`` wrote, and ``encode(tokenizer, ...)``
to turn one pair into ``input_ids`` and ``labels``. The prompt is the tokenizer's own chat
template over the example's system and user messages with the generation prompt added
(``apply_chat_template(..., add_generation_prompt=True)``), the same rendering llama.cpp's
server applies at inference (the GGUF's chat template equals the HF tokenizer's for the default
model; tests/train checks both that and the server's ``/apply-template``). The completion is the
rest of the template's rendering with the target as the assistant turn, up to and including the
end-of-turn token; only those tokens carry labels (every prompt token is ``-100``).

Needs only a tokenizer object (transformers in the train venv); no torch here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ponder.errors import InputError

IGNORE = -100
"""The label of a token that carries no loss (PyTorch's cross-entropy ``ignore_index``)."""


@dataclass(frozen=True)
class Pair:
    """One (prompt messages, assistant target) pair, with where the target came from."""

    messages: list[dict[str, Any]]
    target: str
    source: str
    example_id: str


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    source: str

    @property
    def target_tokens(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def training_pairs(rows: list[dict[str, Any]]) -> list[Pair]:
    """One pair per target of each row (rows without a target give none)."""
    return [
        Pair([dict(m) for m in r["messages"]], t["text"], t["source"], r.get("id", ""))
        for r in rows
        for t in r.get("targets", [])
    ]


def render_prompt(tokenizer: Any, messages: list[dict[str, Any]]) -> str:
    """The inference prompt: the chat template with the assistant header appended."""
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def end_token_ids(tokenizer: Any, extra: Any = None) -> set[int]:
    """Token ids that end an assistant turn (the tokenizer's eos, plus ``extra`` ids)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    if isinstance(extra, int):
        ids.add(extra)
    elif extra:
        ids.update(int(i) for i in extra)
    return ids


def encode(
    tokenizer: Any, pair: Pair, max_length: int, end_ids: set[int] | None = None
) -> Encoded | None:
    """``input_ids`` and ``labels`` for ``pair`` (``None`` if longer than ``max_length``)."""
    prompt = render_prompt(tokenizer, pair.messages)
    full = str(
        tokenizer.apply_chat_template(
            [*pair.messages, {"role": "assistant", "content": pair.target}], tokenize=False
        )
    )
    if not full.startswith(prompt):
        raise InputError(
            "the chat template does not render the assistant turn as a continuation of the "
            "generation prompt; this tokenizer cannot be trained with a prompt-only loss mask"
        )
    prompt_ids = list(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    completion_ids = list(tokenizer(full[len(prompt) :], add_special_tokens=False)["input_ids"])
    ends = end_ids if end_ids is not None else end_token_ids(tokenizer)
    last = max((i for i, t in enumerate(completion_ids) if t in ends), default=None)
    if last is not None:
        completion_ids = completion_ids[: last + 1]  # the template's newline after it: no loss
    if not completion_ids:
        return None
    ids = prompt_ids + completion_ids
    if len(ids) > max_length:
        return None
    return Encoded(ids, [IGNORE] * len(prompt_ids) + completion_ids, pair.source)
