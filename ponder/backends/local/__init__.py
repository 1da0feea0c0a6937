"""The embedded default backend: a llama.cpp server process managed by Ponder.

Use ``LocalBackend()`` for a model with no API key and no GPU. On first use it assembles the
default model (cached, with progress), starts llama.cpp's server on a free loopback port and talks
to it through ``OpenAICompatibleBackend``. Pass ``model_path=`` for any other GGUF.

The server comes from one of two runtimes (``runtime.py``): the prebuilt ``xllamacpp`` wheel (the
default: nothing to compile) or a native ``llama-server`` built by ``ponder setup --native``,
preferred once it is built and measured faster. ``describe()`` says which one served.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ponder.backends.base import Backend, Capabilities
from ponder.backends.local.model import (
    DEFAULT_MODEL,
    ModelSpec,
    ensure_model,
    verify_model,
)
from ponder.backends.local.progress import say
from ponder.backends.local.runtime import Runtime, RuntimeChoice, choose_runtimes
from ponder.backends.local.server import (
    DEFAULT_CTX_PER_SLOT,
    DEFAULT_N_PARALLEL,
    LlamaServer,
)
from ponder.backends.local.toolchain import find_llama_server
from ponder.backends.openai_compat import OpenAICompatibleBackend
from ponder.backends.thinking_format import DEFAULT_TEMPLATE, check_template
from ponder.errors import BackendError, ServerDiedError, ServerStartError
from ponder.protocol.requests import Completion, GenerationRequest

LOCAL_TIMEOUT_S = 3600.0
"""Per-request timeout for the local server. Long, because a slow local generation that times out
is retried from scratch (work lost), while a dead server is detected directly, not by timeout."""

__all__ = [
    "LocalBackend",
    "LlamaServer",
    "ensure_model",
    "find_llama_server",
    "prepare_local",
    "prepare_model",
]


def prepare_model(
    model_path: str | Path | None = None,
    *,
    sha256: str | None = None,
    quiet: bool = False,
    spec: ModelSpec | None = None,
) -> Path:
    """Assemble/verify the default model (or the built-in ``spec``), or check a user's GGUF
    file (against ``sha256`` when given); return its path."""
    if model_path is None:
        model = ensure_model(spec or DEFAULT_MODEL, quiet=quiet)
    else:
        model = Path(model_path).expanduser()
        if not model.is_file():
            raise ServerStartError(f"model file {model} does not exist")
        if sha256:
            verify_model(model, sha256, quiet=quiet)
    return model


def prepare_local(
    model_path: str | Path | None = None,
    *,
    sha256: str | None = None,
    runtime: RuntimeChoice | str | None = "auto",
    quiet: bool = False,
    spec: ModelSpec | None = None,
) -> tuple[list[Runtime], Path]:
    """Choose the runtime(s) to try (building only for an explicit ``native``) and prepare the
    model; return ``(runtimes, model)``, best runtime first."""
    runtimes = choose_runtimes(runtime, quiet=quiet)
    return runtimes, prepare_model(model_path, sha256=sha256, quiet=quiet, spec=spec)


class LocalBackend(Backend):
    """llama.cpp's server + a GGUF model, started lazily on the first call, stopped on ``aclose``.

    ``runtime``: ``"auto"`` (the prebuilt wheel, or the native build once it is measured faster;
    ``$PONDER_LOCAL_RUNTIME`` can set it), ``"prebuilt"`` or ``"native"`` (built if needed).
    ``spec``: a built-in model other than the default (assembled on first use), when
    ``model_path`` is not given; a model named in a config resolves to one of the two
    (``ponder.backends.local.registry``). ``thinking=True`` serves the model in the thinking
    format (``ponder.backends.thinking_format``: a think-first system prompt and a ``<think>``
    prefill; a prompted instruct model, not a trained reasoner). A thinking budget is held by
    budget forcing (the server continues assistant prefixes with the model's own template).
    """

    name = "local"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        sha256: str | None = None,
        n_parallel: int = DEFAULT_N_PARALLEL,
        ctx_per_slot: int = DEFAULT_CTX_PER_SLOT,
        threads: int | None = None,
        quiet: bool = False,
        n_mode: str = "fanout",
        timeout_s: float = LOCAL_TIMEOUT_S,
        runtime: RuntimeChoice | str = "auto",
        spec: ModelSpec | None = None,
        thinking: bool = False,
        thinking_template: str = DEFAULT_TEMPLATE,
    ) -> None:
        if thinking:
            check_template(thinking_template)  # refused now, not at the first call
        self.thinking = thinking
        self.thinking_template = thinking_template
        self.runtime = runtime
        self.spec = spec
        self.model_path = model_path
        self.sha256 = sha256
        self.n_parallel = n_parallel
        self.ctx_per_slot = ctx_per_slot
        self.threads = threads
        self.quiet = quiet
        self.n_mode = n_mode
        self.timeout_s = timeout_s
        self.server: LlamaServer | None = None
        self._inner: OpenAICompatibleBackend | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> OpenAICompatibleBackend:
        async with self._lock:
            if self._inner is None:
                self._inner = await asyncio.to_thread(self._start_blocking)
        return self._inner

    def _start_blocking(self) -> OpenAICompatibleBackend:
        runtimes, model = prepare_local(
            self.model_path,
            sha256=self.sha256,
            runtime=self.runtime,
            quiet=self.quiet,
            spec=self.spec,
        )
        failures: list[str] = []
        for runtime in runtimes:  # the first that starts serves; a fallback only under "auto"
            server = LlamaServer(
                runtime,
                model,
                n_parallel=self.n_parallel,
                ctx_per_slot=self.ctx_per_slot,
                threads=self.threads,
            )
            try:
                server.start()
            except ServerStartError as exc:
                failures.append(str(exc))
                continue
            break
        else:
            raise ServerStartError("\n\n".join(failures))
        if failures:
            say(f"warning: fell back to the {runtime.name} runtime:\n{failures[0]}", quiet=False)
        self.server = server
        return OpenAICompatibleBackend(
            base_url=server.base_url,
            model="local",
            api_key="sk-local",
            n_mode=self.n_mode,
            max_native_n=self.n_parallel,
            max_concurrency=self.n_parallel,
            timeout_s=self.timeout_s,
            tokenize_url=f"{server.url}/tokenize",
            apply_template_url=f"{server.url}/apply-template",
            thinking_format=self.thinking,
            thinking_template=self.thinking_template,
        )

    def describe(self) -> dict[str, object]:
        """Which runtime and model serve this backend (``runtime: null`` until started)."""
        server = self.server
        info: dict[str, object] = {"backend": self.name, "runtime": None}
        if server is not None and server.runtime is not None:
            info.update(server.runtime.describe())
        elif server is not None:
            info["runtime"] = "native"
        if server is not None:
            info["model"] = server.model.name
        if self.thinking:
            info["thinking_format"] = self.thinking_template
        return info

    def _check_alive(self) -> None:
        server = self.server
        if server is not None and not server.alive():
            raise ServerDiedError(
                f"{server.what} at {server.url} exited (code {server.returncode()}); "
                f"last log lines:\n{server.log_tail()}"
            )

    async def generate(self, request: GenerationRequest) -> Completion:
        inner = await self.start()
        self._check_alive()
        try:
            return await inner.generate(request)
        except BackendError:
            self._check_alive()  # a dead server is not worth retrying: say so instead
            raise

    async def count_tokens(self, text: str) -> int:
        return await (await self.start()).count_tokens(text)

    async def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return await (await self.start()).count_prompt_tokens(request)

    async def prompt_billed_once(self, request: GenerationRequest) -> bool:
        return await (await self.start()).prompt_billed_once(request)  # n_mode decides

    async def capabilities(self) -> Capabilities:
        return Capabilities(
            native_n=True,
            max_native_n=self.n_parallel,
            logprobs=True,
            raw_completion=True,
            tools=True,
            continuation=True,
            context_length=self.ctx_per_slot,
            exact_token_count=True,
            thinking_budget=False,
            budget_forcing=True,
        )

    async def aclose(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.aclose()
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.stop)
