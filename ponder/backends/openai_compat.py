"""Backend for any OpenAI-compatible endpoint: OpenAI, vLLM serve, SGLang, llama.cpp, Ollama.

Use it whenever the model is behind an HTTP endpoint. The SDK's own retries are turned off
(``max_retries=0``) so that the orchestrator's retry policy is the only one acting. This module is
the boundary where ``openai``/``httpx`` exceptions become ``ponder.errors``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import OrderedDict
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai

from ponder.backends.base import (
    Backend,
    Capabilities,
    bound_prompt_tokens,
    bound_tokens,
    estimate_tokens,
)
from ponder.backends.openai_wire import (
    convert_text_tool_calls,
    error_detail,
    error_param,
    logprobs_of,
    looks_like_completion,
    prompt_key,
    refuses_n,
    share_tokens,
)
from ponder.errors import (
    BackendError,
    BadRequestError,
    CapabilityMissing,
    ConfigError,
    EndpointUnreachable,
    GenerationTimeout,
    MalformedResponse,
    error_for_status,
    retry_after_s,
)
from ponder.protocol.requests import Choice, Completion, GenerationRequest
from ponder.protocol.tool_calls import offered_names
from ponder.secrets import redact

DEFAULT_TIMEOUT_S = 600.0
PROMPT_COUNT_CACHE = 4096
"""Exact prompt counts remembered from this upstream's own usage (by prompt hash)."""
DEFAULT_MAX_CONCURRENCY = 16
CONTINUATION_MODES = ("auto", "none", "prefill", "template")


class OpenAICompatibleBackend(Backend):
    """Chat and raw completions over the OpenAI wire format.

    ``n`` > 1 is sent natively when the server supports it (``n_mode="auto"`` probes and
    remembers) and otherwise fanned out as concurrent single requests with per-sample seeds.
    Completion tokens are counted per choice, since some servers (llama.cpp) under-report usage
    for native ``n``.

    Continuing a partial assistant message (``GenerationRequest.assistant_prefix``) is done per
    ``continuation``: ``"template"`` renders the chat template server-side (llama.cpp
    ``/apply-template``) and continues with a raw completion; ``"prefill"`` sends the prefix as a
    final assistant message for servers that continue it (llama.cpp, vLLM with
    ``continue_final_message``); ``"none"`` refuses with ``CapabilityMissing``. ``"auto"`` picks
    ``"template"`` when ``apply_template_url`` is known, else ``"none"``.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        n_mode: str = "auto",
        max_native_n: int | None = None,
        tokenize_url: str | None = None,
        apply_template_url: str | None = None,
        continuation: str = "auto",
    ) -> None:
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        check_base_url(base_url)
        model = model or os.environ.get("PONDER_MODEL") or os.environ.get("OPENAI_MODEL")
        if not model:
            raise ConfigError(
                "backend.model", "no model given (pass model=..., --model, or set PONDER_MODEL)"
            )
        if n_mode not in ("auto", "native", "fanout"):
            raise ConfigError(
                "backend.n_mode", f"got {n_mode!r}; valid choices: auto, fanout, native"
            )
        if continuation not in CONTINUATION_MODES:
            raise ConfigError(
                "backend.continuation",
                f"got {continuation!r}; valid choices: {', '.join(CONTINUATION_MODES)}",
            )
        if continuation == "auto":
            continuation = "template" if apply_template_url else "none"
        if continuation == "template" and not apply_template_url:
            raise ConfigError(
                "backend.continuation", "'template' needs apply_template_url (llama.cpp)"
            )
        self.continuation = continuation
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.n_mode = n_mode
        self.max_native_n = max_native_n
        self._native_n_ok: bool | None = True if n_mode == "native" else None
        self._prompt_seen: OrderedDict[str, int] = OrderedDict()
        self._tokenize_url = tokenize_url
        self._apply_template_url = apply_template_url
        self._semaphore = asyncio.Semaphore(max_concurrency)
        key = api_key or os.environ.get("OPENAI_API_KEY") or "sk-no-key"
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=key,
            max_retries=0,
            timeout=timeout_s,
        )
        self._http = httpx.AsyncClient(timeout=30.0)

    # -- protocol -----------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> Completion:
        n = request.params.n
        if n > 1 and await self._use_native_n(n):
            try:
                return await self._call(request)
            except BadRequestError as exc:
                if self.n_mode == "native" or not refuses_n(exc):
                    raise  # a 400 for another reason (context length, ...) is that request's
                self._native_n_ok = False  # this endpoint refused n itself: fan out from now on
        if n == 1:
            return await self._call(request)
        return await self._fan_out(request)

    async def count_tokens(self, text: str) -> int:
        exact = await self._exact_tokens(text)
        return exact if exact is not None else estimate_tokens(text)

    async def _exact_tokens(self, text: str, *, special: bool = False) -> int | None:
        """The tokenizer endpoint's count, or ``None`` without one (or when it fails).
        ``special`` counts the BOS/EOS tokens the model adds to a whole prompt (none for
        Qwen; one for Llama), as the server does when it tokenizes a prompt."""
        if not self._tokenize_url:
            return None
        try:
            body = self._tokenize_body(text)
            body["add_special"] = body["add_special_tokens"] = special
            resp = await self._http.post(self._tokenize_url, json=body)
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

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Exact where this upstream can tell (its own usage for this prompt before, or the
        tokenizer endpoint), else the safe bound: never an estimate that can fall short."""
        key = prompt_key(request)
        seen = self._prompt_seen.get(key)
        if seen is not None:
            self._prompt_seen.move_to_end(key)
            return seen
        if not request.is_chat and request.prompt is not None:
            exact = await self._exact_tokens(request.prompt, special=True)
            if exact is not None:
                return exact
        if request.is_chat and self._apply_template_url and self._tokenize_url:
            try:  # llama.cpp: render the chat template server-side, then count exactly
                resp = await self._http.post(
                    self._apply_template_url, json={"messages": list(request.messages or ())}
                )
                resp.raise_for_status()
                prompt = resp.json()["prompt"] + (request.assistant_prefix or "")
                exact = await self._exact_tokens(prompt, special=True)
                if exact is not None:
                    return exact
            except (httpx.HTTPError, KeyError, ValueError, TypeError):
                pass
        if request.is_chat and self._tokenize_url and request.assistant_prefix is None:
            exact = await self._exact_chat_tokens(request)
            if exact is not None:
                return exact
        return bound_prompt_tokens(request)

    async def _exact_chat_tokens(self, request: GenerationRequest) -> int | None:
        """vLLM's ``/tokenize`` renders a chat with the model's template and counts it (its
        answer carries ``max_model_len``, which llama.cpp's, reading only ``content``, lacks)."""
        assert self._tokenize_url is not None
        body = {
            "model": self.model,
            "messages": list(request.messages or ()),
            "add_generation_prompt": True,
        }
        if request.tools:
            body["tools"] = list(request.tools)
        try:
            resp = await self._http.post(self._tokenize_url, json=body)
            resp.raise_for_status()
            data = resp.json()
            if "max_model_len" not in data:
                return None
            return int(data.get("count") or len(data["tokens"]))
        except (httpx.HTTPError, KeyError, ValueError, TypeError):
            return None

    def _remember_prompt(self, request: GenerationRequest, prompt_tokens: int) -> None:
        if prompt_tokens <= 0:
            return
        key = prompt_key(request)
        self._prompt_seen[key] = prompt_tokens
        self._prompt_seen.move_to_end(key)
        while len(self._prompt_seen) > PROMPT_COUNT_CACHE:
            self._prompt_seen.popitem(last=False)

    async def capabilities(self) -> Capabilities:
        return Capabilities(
            native_n=self._native_n_ok,
            max_native_n=self.max_native_n,
            logprobs=None,
            raw_completion=None,
            tools=None,
            continuation=self.continuation != "none",
            exact_token_count=self._tokenize_url is not None,
        )

    async def aclose(self) -> None:
        await self._client.close()
        await self._http.aclose()

    # -- internals ----------------------------------------------------------------------------

    async def _use_native_n(self, n: int) -> bool:
        if self.n_mode == "fanout" or self._native_n_ok is False:
            return False
        return not (self.max_native_n is not None and n > self.max_native_n)

    async def _fan_out(self, request: GenerationRequest) -> Completion:
        p = request.params
        singles = [
            request.with_params(n=1, seed=None if p.seed is None else p.seed + i)
            for i in range(p.n)
        ]
        t0 = time.perf_counter()
        parts = await asyncio.gather(*(self._call(r) for r in singles))
        return Completion(
            choices=[c for part in parts for c in part.choices],
            prompt_tokens=sum(part.prompt_tokens for part in parts),
            calls=len(parts),
            model=parts[0].model if parts else self.model,
            latency_s=time.perf_counter() - t0,
            cached_prompt_tokens=sum(part.cached_prompt_tokens for part in parts),
        )

    def _kwargs(self, request: GenerationRequest) -> dict[str, Any]:
        p = request.params
        kw: dict[str, Any] = {
            "model": self.model,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
        }
        if p.n != 1:
            kw["n"] = p.n
        if p.stop:
            kw["stop"] = list(p.stop)
        if p.seed is not None:
            kw["seed"] = p.seed
        if p.logprobs:
            if request.is_chat:
                kw["logprobs"] = True
                if p.top_logprobs:
                    kw["top_logprobs"] = p.top_logprobs
            else:
                kw["logprobs"] = max(p.top_logprobs, 1)
        return kw

    async def _continue(self, request: GenerationRequest) -> Completion:
        """Continue ``request.assistant_prefix`` per ``self.continuation`` (see the class doc)."""
        prefix = request.assistant_prefix or ""
        messages = list(request.messages or ())
        if self.continuation == "prefill":
            msgs = (*messages, {"role": "assistant", "content": prefix})
            plain = replace(request, messages=msgs, assistant_prefix=None)
            done = await self._call(
                plain, extra_body={"continue_final_message": True, "add_generation_prompt": False}
            )
            for choice in done.choices:  # llama.cpp echoes the prefilled text; keep only the new
                if prefix and choice.text.startswith(prefix):
                    choice.text = choice.text[len(prefix) :]
            return done
        if self.continuation != "template" or not self._apply_template_url:
            raise CapabilityMissing(
                f"the backend at {self.base_url} lacks capability 'continuation' (continuing a "
                "partial assistant message): it needs raw completions with the model's chat "
                "template (llama.cpp /apply-template) or assistant-prefix continuation; set "
                "backend continuation='prefill' if the server continues a final assistant "
                "message, or use the strategy without continuation",
                url=self.base_url,
            )
        try:
            resp = await self._http.post(self._apply_template_url, json={"messages": messages})
            resp.raise_for_status()
            rendered = str(resp.json()["prompt"])
        except httpx.HTTPStatusError as exc:
            raise BadRequestError(
                f"{self._apply_template_url} refused to render the chat template "
                f"(HTTP {exc.response.status_code}): {exc.response.text[:300]}",
                url=self._apply_template_url,
                status=exc.response.status_code,
            ) from exc
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            raise EndpointUnreachable(
                f"cannot render the chat template at {self._apply_template_url}: {exc}",
                url=self._apply_template_url,
            ) from exc
        raw = GenerationRequest(
            prompt=rendered + prefix,
            params=request.params,
            role=request.role,
            purpose=request.purpose,
        )
        return await self._call(raw)

    async def _call(
        self, request: GenerationRequest, extra_body: dict[str, Any] | None = None
    ) -> Completion:
        if request.assistant_prefix is not None:
            return await self._continue(request)
        kw = self._kwargs(request)
        if extra_body:
            kw["extra_body"] = extra_body
        t0 = time.perf_counter()
        async with self._semaphore:
            try:
                if request.is_chat:
                    if request.tools:
                        kw["tools"] = list(request.tools)
                        if request.tool_choice is not None:
                            kw["tool_choice"] = request.tool_choice
                    resp: Any = await self._client.chat.completions.create(
                        messages=list(request.messages or ()),  # type: ignore[arg-type]
                        **kw,
                    )
                else:
                    resp = await self._client.completions.create(prompt=request.prompt or "", **kw)
            except openai.OpenAIError as exc:
                raise self._translate(exc) from exc
            except json.JSONDecodeError as exc:  # a 200 whose body is not JSON (text/html
                raise self._malformed(exc) from exc  # comes back as a str: checked below)
        latency = time.perf_counter() - t0
        if not looks_like_completion(resp, request.is_chat):
            raise self._malformed(None, resp)
        try:
            done = await self._to_completion(request, resp, latency)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise self._malformed(exc) from exc
        if request.params.n == 1 or done.calls == 1:
            self._remember_prompt(request, done.prompt_tokens)
        return done

    def _malformed(self, exc: BaseException | None, resp: Any = None) -> MalformedResponse:
        what = f"{type(exc).__name__}: {exc}" if exc is not None else f"a {type(resp).__name__}"
        return MalformedResponse(
            f"{self.base_url} answered with a body that is not a completion ({what[:200]})",
            url=self.base_url,
            status=200,
        )

    async def _count_choices(
        self, request: GenerationRequest, choices: list[Choice], reported: int | None
    ) -> None:
        """Completion tokens per choice, as the upstream counts them.

        One choice: the upstream's ``usage``. Several: exact per choice where known (logprobs,
        the tokenizer endpoint); otherwise the upstream's total, when it is one (OpenAI and
        vLLM report the sum for ``n`` > 1), shared out by text length; when that total is
        short of the least the choices can cost (``least_tokens``: llama.cpp reports one
        choice), a safe bound per choice:
        ``max_tokens`` for a choice cut at ``length``, else its UTF-8 bytes + 1, capped at
        ``max_tokens``."""
        if len(choices) == 1 and reported is not None:
            choices[0].completion_tokens = int(reported)
            return
        cap = request.params.max_tokens
        exact: list[int | None] = []
        for ch in choices:
            if ch.token_logprobs is not None:
                exact.append(len(ch.token_logprobs))
            else:
                exact.append(await self._exact_tokens(ch.text))
        if all(e is not None for e in exact):
            for ch, e in zip(choices, exact, strict=True):
                ch.completion_tokens = int(e or 0)
            return
        bounds = [
            cap if ch.finish_reason == "length" else min(cap, bound_tokens(ch.text) + 1)
            for ch in choices
        ]
        least = sum(
            cap if ch.finish_reason == "length" else min(cap, least_tokens(ch.text))
            for ch in choices
        )
        if reported is not None and reported >= least:
            share_tokens(choices, int(reported), bounds)
            return
        for ch, e, b in zip(choices, exact, bounds, strict=True):
            ch.completion_tokens = e if e is not None else b

    async def _to_completion(
        self, request: GenerationRequest, resp: Any, latency: float
    ) -> Completion:
        usage = getattr(resp, "usage", None)
        raw_choices = sorted(resp.choices or [], key=lambda c: c.index)
        choices: list[Choice] = []
        for c in raw_choices:
            if request.is_chat:
                text = c.message.content or ""
                tool_calls = (
                    [tc.model_dump() for tc in c.message.tool_calls]
                    if getattr(c.message, "tool_calls", None)
                    else None
                )
                content = c.logprobs.content if c.logprobs is not None else None
            else:
                text = c.text or ""
                tool_calls = None
                content = None
                if c.logprobs is not None:
                    # OpenAI's legacy shape has token_logprobs; llama.cpp answers raw
                    # completions in the chat shape (``content``), kept as an extra field.
                    content = getattr(c.logprobs, "content", None)
            lps, tops = logprobs_of(c.logprobs, content)
            choices.append(
                Choice(
                    text=text,
                    finish_reason=c.finish_reason,
                    completion_tokens=0,
                    token_logprobs=lps,
                    tool_calls=tool_calls,
                    seed=request.params.seed,
                    top_logprobs=tops if request.params.top_logprobs else None,
                )
            )
        reported = getattr(usage, "completion_tokens", None) if usage else None
        await self._count_choices(request, choices, None if reported is None else int(reported))
        if request.tools and request.tool_choice != "none":
            convert_text_tool_calls(choices, offered_names(request.tools))
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0) if usage else 0
        if not prompt_tokens:
            prompt_tokens = await self.count_prompt_tokens(request)
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        cached = int(getattr(details, "cached_tokens", 0) or 0) if details else 0
        return Completion(
            choices=choices,
            prompt_tokens=prompt_tokens,
            calls=1,
            model=getattr(resp, "model", None) or self.model,
            latency_s=latency,
            cached_prompt_tokens=cached,
        )

    def _translate(self, exc: openai.OpenAIError) -> BackendError:
        url = self.base_url
        if isinstance(exc, openai.APITimeoutError):
            return GenerationTimeout(f"request to {url} timed out", url=url)
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            text = redact(str(cause), [self._client.api_key])
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
            detail = redact(error_detail(exc), [self._client.api_key])
            after = retry_after_s(exc.response.headers)
            # the key and masked forms of it are redacted from detail
            return error_for_status(
                status, url, detail, url=url, retry_after_s=after, param=error_param(exc)
            )
        return BackendError(f"call to {url} failed: {exc}", url=url)


_PRETOKEN = re.compile(r"[^\W\d_]+|\d{1,3}")


def least_tokens(text: str) -> int:
    """A lower bound on the tokens of ``text`` for vocabularies with a GPT-style pre-tokenizer
    (cl100k, Llama 3, Qwen 2): each run of letters and each group of up to 3 digits is at least
    one token of its own."""
    return len(_PRETOKEN.findall(text)) or int(bool(text))


def check_base_url(url: str) -> None:
    """A ``ConfigError`` unless ``url`` is an absolute http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # raises ValueError on a malformed port
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            "backend.base_url",
            f"{url!r} is not an http(s) URL with a host (e.g. http://127.0.0.1:8000/v1)",
        )
