"""Counting tokens the way an OpenAI-compatible upstream does: its tokenizer-side endpoints.

Use it for every token count ``OpenAICompatibleBackend`` gives or charges: ``UpstreamTokens``
asks the upstream's ``/tokenize`` (llama.cpp's or vLLM's, one body for both) and renders chats with
llama.cpp's ``/apply-template``, remembers each prompt's exact count from the upstream's own usage,
and counts completion tokens per choice, falling back to bounds that never fall short, and the
thinking tokens among them (``count_reasoning``). Without a tokenizer endpoint, counts are the
safe bounds of ``ponder.backends.base`` (thinking: an estimate).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import OrderedDict
from typing import Any

import httpx

from ponder.backends.base import bound_prompt_tokens, bound_tokens, estimate_tokens
from ponder.errors import BadRequestError, EndpointUnreachable
from ponder.protocol.requests import Choice, GenerationRequest
from ponder.protocol.thinking import joined

PROMPT_COUNT_CACHE = 4096
"""Exact prompt counts remembered from this upstream's own usage (by prompt hash)."""


class UpstreamTokens:
    """One upstream's tokenizer endpoints (either may be ``None``) and what they count.

    Owns the plain HTTP client those endpoints are called with (``aclose`` closes it)."""

    def __init__(
        self, *, model: str, tokenize_url: str | None, apply_template_url: str | None
    ) -> None:
        self.model = model
        self.tokenize_url = tokenize_url
        self.apply_template_url = apply_template_url
        self._prompt_seen: OrderedDict[str, int] = OrderedDict()
        self._http = httpx.AsyncClient(timeout=30.0)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def exact(self, text: str, *, special: bool = False) -> int | None:
        """The tokenizer endpoint's count, or ``None`` without one (or when it fails).
        ``special`` counts the BOS/EOS tokens the model adds to a whole prompt (none for
        Qwen; one for Llama), as the server does when it tokenizes a prompt."""
        if not self.tokenize_url:
            return None
        try:
            body = self._tokenize_body(text)
            body["add_special"] = body["add_special_tokens"] = special
            resp = await self._http.post(self.tokenize_url, json=body)
            resp.raise_for_status()
            return len(resp.json()["tokens"])
        except (httpx.HTTPError, KeyError, ValueError, TypeError):
            return None

    def _tokenize_body(self, text: str) -> dict[str, Any]:
        """One body both tokenizer endpoints accept: llama.cpp's ``/tokenize`` reads ``content``
        (``add_special``), vLLM's reads ``prompt`` (``add_special_tokens``, ``model``); each
        ignores the other's fields. Both answer ``{"tokens": [...]}``."""
        return {
            "content": text,
            "add_special": False,
            "prompt": text,
            "add_special_tokens": False,
            "model": self.model,
        }

    async def prompt_tokens(self, request: GenerationRequest) -> int:
        """Exact where this upstream can tell (its own usage for this prompt before, or the
        tokenizer endpoint), else the safe bound: never an estimate that can fall short."""
        key = prompt_key(request)
        seen = self._prompt_seen.get(key)
        if seen is not None:
            self._prompt_seen.move_to_end(key)
            return seen
        if not request.is_chat and request.prompt is not None:
            exact = await self.exact(request.prompt, special=True)
            if exact is not None:
                return exact
        if request.is_chat and self.apply_template_url and self.tokenize_url:
            try:  # llama.cpp: render the chat template server-side, then count exactly
                resp = await self._http.post(
                    self.apply_template_url, json={"messages": list(request.messages or ())}
                )
                resp.raise_for_status()
                prompt = resp.json()["prompt"] + (request.assistant_prefix or "")
                exact = await self.exact(prompt, special=True)
                if exact is not None:
                    return exact
            except (httpx.HTTPError, KeyError, ValueError, TypeError):
                pass
        if request.is_chat and self.tokenize_url and request.assistant_prefix is None:
            exact = await self._exact_chat(request)
            if exact is not None:
                return exact
        return bound_prompt_tokens(request)

    async def _exact_chat(self, request: GenerationRequest) -> int | None:
        """vLLM's ``/tokenize`` renders a chat with the model's template and counts it (its
        answer carries ``max_model_len``, which llama.cpp's, reading only ``content``, lacks)."""
        assert self.tokenize_url is not None
        body = {
            "model": self.model,
            "messages": list(request.messages or ()),
            "add_generation_prompt": True,
        }
        if request.tools:
            body["tools"] = list(request.tools)
        try:
            resp = await self._http.post(self.tokenize_url, json=body)
            resp.raise_for_status()
            data = resp.json()
            if "max_model_len" not in data:
                return None
            return int(data.get("count") or len(data["tokens"]))
        except (httpx.HTTPError, KeyError, ValueError, TypeError):
            return None

    def remember(self, request: GenerationRequest, prompt_tokens: int) -> None:
        """Keep the upstream's own count of this prompt (its usage) for ``prompt_tokens``."""
        if prompt_tokens <= 0:
            return
        key = prompt_key(request)
        self._prompt_seen[key] = prompt_tokens
        self._prompt_seen.move_to_end(key)
        while len(self._prompt_seen) > PROMPT_COUNT_CACHE:
            self._prompt_seen.popitem(last=False)

    async def render_template(self, messages: list[Any]) -> str:
        """The chat rendered by llama.cpp's ``/apply-template`` (the prompt a raw completion
        continues); a 4xx/5xx is a ``BadRequestError``, no answer ``EndpointUnreachable``."""
        url = self.apply_template_url
        assert url is not None
        try:
            resp = await self._http.post(url, json={"messages": messages})
            resp.raise_for_status()
            return str(resp.json()["prompt"])
        except httpx.HTTPStatusError as exc:
            raise BadRequestError(
                f"{url} refused to render the chat template "
                f"(HTTP {exc.response.status_code}): {exc.response.text[:300]}",
                url=url,
                status=exc.response.status_code,
            ) from exc
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise EndpointUnreachable(
                f"cannot render the chat template at {url}: {exc}", url=url
            ) from exc

    async def count_choices(
        self, request: GenerationRequest, choices: list[Choice], reported: int | None
    ) -> None:
        """Completion tokens per choice, as the upstream counts them.

        One choice: the upstream's ``usage``. Several: exact per choice where known (logprobs,
        the tokenizer endpoint); otherwise the upstream's total, when it is one (OpenAI and
        vLLM report the sum for ``n`` > 1), shared out by text length; when that total is
        short of the least the choices can cost (``least_tokens``: llama.cpp reports one
        choice), a safe bound per choice:
        ``max_tokens`` for a choice cut at ``length``, else its UTF-8 bytes + 1, capped at
        ``max_tokens``. A choice's thinking that came apart (``reasoning``) is counted with its
        text: the model generated both."""
        if len(choices) == 1 and reported is not None:
            choices[0].completion_tokens = int(reported)
            return
        cap = request.params.max_tokens
        exact: list[int | None] = []
        for ch in choices:
            if ch.token_logprobs is not None:
                exact.append(len(ch.token_logprobs))
            else:
                exact.append(await self._exact_generated(ch))
        if all(e is not None for e in exact):
            for ch, e in zip(choices, exact, strict=True):
                ch.completion_tokens = int(e or 0)
            return
        bounds = [
            cap if ch.finish_reason == "length" else min(cap, bound_tokens(generated(ch)) + 1)
            for ch in choices
        ]
        least = sum(
            cap if ch.finish_reason == "length" else min(cap, least_tokens(generated(ch)))
            for ch in choices
        )
        if reported is not None and reported >= least:
            share_tokens(choices, int(reported), bounds)
            return
        for ch, e, b in zip(choices, exact, bounds, strict=True):
            ch.completion_tokens = e if e is not None else b

    async def _exact_generated(self, ch: Choice) -> int | None:
        text = await self.exact(ch.text)
        if text is None or not ch.reasoning:
            return text
        thinking = await self.exact(ch.reasoning)
        return None if thinking is None else text + thinking

    async def count_reasoning(self, choices: list[Choice], reported: int | None) -> None:
        """Thinking tokens per choice (``Choice.reasoning_tokens``, at most its
        ``completion_tokens``), once those are counted.

        The upstream's ``completion_tokens_details.reasoning_tokens`` where it gives a positive
        one (for ``n`` > 1 its total, shared out by each choice's thinking, or by its completion
        tokens when no thinking text came back: hidden reasoning); else each choice's
        ``reasoning`` counted by the tokenizer endpoint, or estimated without one."""
        if reported and len(choices) == 1:
            choices[0].reasoning_tokens = max(0, min(int(reported), choices[0].completion_tokens))
            return
        counts: list[int] = []
        for ch in choices:
            if not ch.reasoning:
                counts.append(0)
                continue
            exact = await self.exact(ch.reasoning)
            counts.append(exact if exact is not None else estimate_tokens(ch.reasoning))
        if reported and choices:
            weights = counts if any(counts) else [ch.completion_tokens for ch in choices]
            some = [i for i, w in enumerate(weights) if w > 0] or list(range(len(choices)))
            given = shares(int(reported), [weights[i] for i in some])
            counts = [0] * len(choices)
            for i, n in zip(some, given, strict=True):
                counts[i] = n
        for ch, n in zip(choices, counts, strict=True):
            ch.reasoning_tokens = max(0, min(n, ch.completion_tokens))


def generated(ch: Choice) -> str:
    """The text a choice's tokens were spent on: its thinking (if it came apart) and its text."""
    return joined(ch.reasoning, ch.text)


def prompt_key(request: GenerationRequest) -> str:
    """The key a prompt's exact token count is remembered by."""
    data = [request.messages, request.prompt, request.assistant_prefix, request.tools]
    raw = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def share_tokens(choices: list[Choice], total: int, weights: list[int]) -> None:
    """Split ``total`` over the choices in proportion to ``weights`` (sums exactly)."""
    for ch, n in zip(choices, shares(total, weights), strict=True):
        ch.completion_tokens = n


def shares(total: int, weights: list[int]) -> list[int]:
    """``total`` split in proportion to ``weights`` (sums exactly; a zero weight counts 1)."""
    w = sum(weights) or len(weights)
    out: list[int] = []
    for i, weight in enumerate(weights):
        if i == len(weights) - 1:
            out.append(total - sum(out))
        else:
            out.append(total * (weight or 1) // w)
    return out


_PRETOKEN = re.compile(r"[^\W\d_]+|\d{1,3}")


def least_tokens(text: str) -> int:
    """A lower bound on the tokens of ``text`` for vocabularies with a GPT-style pre-tokenizer
    (cl100k, Llama 3, Qwen 2): each run of letters and each group of up to 3 digits is at least
    one token of its own."""
    return len(_PRETOKEN.findall(text)) or int(bool(text))
