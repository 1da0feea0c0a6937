"""Backend for any OpenAI-compatible endpoint: OpenAI, vLLM serve, SGLang, llama.cpp, Ollama.

Use it whenever the model is behind an HTTP endpoint. The SDK's own retries are turned off
(``max_retries=0``) so that the orchestrator's retry policy is the only one acting. This module
holds the settings, the transport (SDK client, concurrency limit) and the call path: native ``n``
or fan-out, continuation, and the one ``try`` where ``openai`` exceptions become ``ponder.errors``
(``openai_errors``). What is sent is built by ``openai_request``, responses are read by
``openai_wire``, and tokens are counted by ``openai_tokens``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import openai

from ponder.backends.base import Backend, Capabilities, estimate_tokens
from ponder.backends.openai_errors import malformed, refuses_n, translate
from ponder.backends.openai_request import (
    NATIVE_KNOBS,
    call_kwargs,
    drop_echoed_prefix,
    fan_out_requests,
    merge_fanned_out,
    native_thinking,
    prefill_request,
    raw_continuation,
)
from ponder.backends.openai_tokens import UpstreamTokens
from ponder.backends.openai_wire import (
    convert_text_tool_calls,
    looks_like_completion,
    read_choices,
    reported_reasoning_tokens,
)
from ponder.backends.thinking_format import DEFAULT_TEMPLATE, ThinkingFormat
from ponder.backends.trace_context import inject_request
from ponder.errors import BadRequestError, CapabilityMissing, ConfigError
from ponder.protocol.requests import Completion, GenerationRequest
from ponder.protocol.thinking import DEFAULT_MARKERS, check_markers, split_inline
from ponder.protocol.tool_calls import offered_names
from ponder.secrets import redact, url_secrets, without_userinfo

DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MAX_CONCURRENCY = 16
CONTINUATION_MODES = ("auto", "none", "prefill", "template")
THINKING_BUDGET_MODES = ("auto", "forcing", "none", *NATIVE_KNOBS)
log = logging.getLogger("ponder.backends")
_warned_userinfo: set[str] = set()


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

    A reasoning model's thinking comes back apart from its answer (``Choice.reasoning``): from
    the message's ``reasoning_content`` or ``reasoning``, else split off the inline
    ``thinking_markers`` (``<think>``/``</think>`` by default; ``None`` turns that off);
    ``Choice.reasoning_tokens`` from the upstream's ``completion_tokens_details`` where given.

    ``thinking_budget`` says how a thinking budget is held on this upstream
    (``ponder.orchestrator.thinking_bound``): a native knob (``reasoning_effort``,
    ``thinking_token_budget``, ``thinking_budget_tokens``), ``forcing`` (Ponder closes the thinking
    and continues; needs ``continuation``), ``none`` (a budget is refused), or ``auto``: forcing
    where continuation is configured, else none. ``thinking_format=True`` prompts a non-reasoning
    model to think first (``ponder.backends.thinking_format``; needs ``continuation``).
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
        thinking_markers: tuple[str, ...] | list[str] | None = DEFAULT_MARKERS,
        thinking_budget: str = "auto",
        thinking_format: bool = False,
        thinking_template: str = DEFAULT_TEMPLATE,
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
        try:
            self.thinking_markers = check_markers(thinking_markers) if thinking_markers else None
        except ValueError as exc:
            raise ConfigError("backend.thinking_markers", str(exc)) from None
        self.thinking_budget = _thinking_budget_mode(thinking_budget, continuation)
        self.thinking_format: ThinkingFormat | None = None
        if thinking_format:
            if continuation == "none":
                raise ConfigError(
                    "backend.thinking",
                    "the thinking format opens the thinking with an assistant prefill, which "
                    "needs continuation (continuation: prefill, or apply_template_url)",
                )
            self.thinking_format = ThinkingFormat(
                self.thinking_markers or DEFAULT_MARKERS, thinking_template
            )
        self.base_url, query = split_base_url(base_url)
        self.url_secrets = [
            s for u in (base_url, tokenize_url, apply_template_url) for s in url_secrets(u)
        ]
        self.model = model
        self.n_mode = n_mode
        self.max_native_n = max_native_n
        self._native_n_ok: bool | None = True if n_mode == "native" else None
        self._native_n_upto = 0  # the largest n a native call succeeded with (auto)
        self._tokens = UpstreamTokens(
            model=model, tokenize_url=tokenize_url, apply_template_url=apply_template_url
        )
        self._semaphore = asyncio.Semaphore(max_concurrency)
        key = api_key or os.environ.get("OPENAI_API_KEY") or "sk-no-key"
        self._secrets = [key, *self.url_secrets]
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=key,
            max_retries=0,
            timeout=timeout_s,
            default_query=query or None,
            http_client=openai.DefaultAsyncHttpxClient(event_hooks={"request": [inject_request]}),
        )

    # -- protocol -----------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> Completion:
        split = False
        if self.thinking_format is not None:
            request, split = self.thinking_format.request(request)
        done = await self._generate(request)
        if split and self.thinking_format is not None:  # it continued the opened thinking
            self.thinking_format.split(done.choices)
            await self._tokens.count_reasoning(done.choices, None)
        return done

    async def _generate(self, request: GenerationRequest) -> Completion:
        n = request.params.n
        if n > 1 and await self._use_native_n(n):
            try:
                done = await self._call(request)
                self._native_n_upto = max(self._native_n_upto, n)
                return done
            except BadRequestError as exc:
                if self.n_mode == "native" or not refuses_n(exc):
                    raise  # a 400 for another reason (context length, ...) is that request's
                self._native_n_ok = False  # this endpoint refused n itself: fan out from now on
        if n == 1:
            return await self._call(request)
        return await self._fan_out(request)

    async def count_tokens(self, text: str) -> int:
        exact = await self._tokens.exact(text)
        return exact if exact is not None else estimate_tokens(text)

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Exact where this upstream can tell (its own usage for this prompt before, or the
        tokenizer endpoint), else the safe bound: never an estimate that can fall short."""
        if self.thinking_format is not None:
            request = self.thinking_format.request(request)[0]
        return await self._tokens.prompt_tokens(request)

    async def prompt_billed_once(self, request: GenerationRequest) -> bool:
        """True where ``request`` goes out as one native-``n`` call that cannot fall back to a
        fan-out: ``n_mode="native"``, or ``"auto"`` once a native call of this ``n`` or more
        succeeded here (before that a refusal would fan it out, billing ``n`` prompts)."""
        n = request.params.n
        if n == 1:
            return True
        if not await self._use_native_n(n):
            return False
        return self.n_mode == "native" or n <= self._native_n_upto

    async def capabilities(self) -> Capabilities:
        return Capabilities(
            native_n=self._native_n_ok,
            max_native_n=self.max_native_n,
            logprobs=None,
            raw_completion=None,
            tools=None,
            continuation=self.continuation != "none",
            exact_token_count=self._tokens.tokenize_url is not None,
            thinking_budget=self.thinking_budget in NATIVE_KNOBS,
            budget_forcing=self.thinking_budget == "forcing",
        )

    async def aclose(self) -> None:
        await self._client.close()
        await self._tokens.aclose()

    # -- internals ----------------------------------------------------------------------------

    async def _use_native_n(self, n: int) -> bool:
        if self.n_mode == "fanout" or self._native_n_ok is False:
            return False
        return not (self.max_native_n is not None and n > self.max_native_n)

    async def _fan_out(self, request: GenerationRequest) -> Completion:
        singles = fan_out_requests(request)
        t0 = time.perf_counter()
        parts = await asyncio.gather(*(self._call(r) for r in singles))
        return merge_fanned_out(parts, self.model, time.perf_counter() - t0)

    async def _continue(self, request: GenerationRequest) -> Completion:
        """Continue ``request.assistant_prefix`` per ``self.continuation`` (see the class doc)."""
        if self.continuation == "prefill":
            plain, extra_body = prefill_request(request)
            done = await self._call(plain, extra_body=extra_body)
            drop_echoed_prefix(done.choices, request.assistant_prefix or "")
            return done
        if self.continuation != "template" or not self._tokens.apply_template_url:
            raise CapabilityMissing(
                f"the backend at {self.base_url} lacks capability 'continuation' (continuing a "
                "partial assistant message): it needs raw completions with the model's chat "
                "template (llama.cpp /apply-template) or assistant-prefix continuation; set "
                "backend continuation='prefill' if the server continues a final assistant "
                "message, or use the strategy without continuation",
                url=self.base_url,
            )
        rendered = await self._tokens.render_template(list(request.messages or ()))
        return await self._call(raw_continuation(request, rendered))

    async def _call(
        self, request: GenerationRequest, extra_body: dict[str, Any] | None = None
    ) -> Completion:
        if request.assistant_prefix is not None:
            return await self._continue(request)
        kw = call_kwargs(self.model, request, extra_body)
        if request.thinking is not None and self.thinking_budget in NATIVE_KNOBS:
            native_thinking(kw, request.thinking, self.thinking_budget)
        t0 = time.perf_counter()
        async with self._semaphore:
            try:
                if request.is_chat:
                    resp: Any = await self._client.chat.completions.create(
                        messages=list(request.messages or ()),  # type: ignore[arg-type]
                        **kw,
                    )
                else:
                    resp = await self._client.completions.create(prompt=request.prompt or "", **kw)
            except openai.OpenAIError as exc:
                raise translate(exc, self.base_url, self._secrets) from exc
            except json.JSONDecodeError as exc:  # a 200 whose body is not JSON (text/html
                raise malformed(self.base_url, exc) from exc  # comes back as a str: checked below)
        latency = time.perf_counter() - t0
        if not looks_like_completion(resp, request.is_chat):
            raise malformed(self.base_url, None, resp)
        try:
            done = await self._to_completion(request, resp, latency)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise malformed(self.base_url, exc) from exc
        if request.params.n == 1 or done.calls == 1:
            self._tokens.remember(request, done.prompt_tokens)
        return done

    async def _to_completion(
        self, request: GenerationRequest, resp: Any, latency: float
    ) -> Completion:
        usage = getattr(resp, "usage", None)
        choices = read_choices(request, resp)
        reported = getattr(usage, "completion_tokens", None) if usage else None
        await self._tokens.count_choices(
            request, choices, None if reported is None else int(reported)
        )
        split_inline(request, choices, self.thinking_markers)  # counted as generated, then split
        await self._tokens.count_reasoning(choices, reported_reasoning_tokens(usage))
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


def _thinking_budget_mode(mode: str, continuation: str) -> str:
    """The ``thinking_budget`` setting checked, ``auto`` resolved (forcing where this backend
    continues an assistant message, else none)."""
    if mode not in THINKING_BUDGET_MODES:
        raise ConfigError(
            "backend.thinking_budget",
            f"got {mode!r}; valid choices: {', '.join(THINKING_BUDGET_MODES)}",
        )
    if mode == "auto":
        return "forcing" if continuation != "none" else "none"
    if mode == "forcing" and continuation == "none":
        raise ConfigError(
            "backend.thinking_budget",
            "'forcing' continues a cut thinking as an assistant prefix, which needs continuation "
            "(continuation: prefill, or apply_template_url); or name the upstream's native knob: "
            + ", ".join(NATIVE_KNOBS),
        )
    return mode


def split_base_url(url: str) -> tuple[str, dict[str, str]]:
    """The base URL the SDK is given and its query parameters, sent with every call.

    Credentials in the URL (``http://user:password@host/v1``) are dropped, with one warning per
    URL: the HTTP client would send them as Basic auth in place of the API key, and the key
    (``api_key``, from the env var a config names) is what authenticates, as a Bearer token. A
    query (``?api-version=...``) is kept apart, so that paths are appended to the path, not to
    the query."""
    clean = without_userinfo(url)
    if clean != url and url not in _warned_userinfo:
        _warned_userinfo.add(url)
        log.warning(
            "ignoring the user:password in base_url %s: the API key authenticates (Bearer); "
            "put the upstream key in the env var named by api_key_env",
            redact(url, url_secrets(url)),
        )
    parts = urlsplit(clean)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    base = urlunsplit(parts._replace(query="", fragment=""))
    return base.rstrip("/"), query


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
