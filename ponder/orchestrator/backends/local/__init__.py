"""The embedded default backend: a llama-server process managed by Ponder.

Use ``LocalBackend()`` for a model with no API key and no GPU. On first use it builds llama-server
and assembles the default model (both cached, with progress), starts the server on a free loopback
port, and talks to it through ``OpenAICompatibleBackend``. Pass ``model_path=`` for any other GGUF.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from ponder.errors import BackendError, ServerDiedError, ServerStartError
from ponder.orchestrator.backends.base import Backend, Capabilities
from ponder.orchestrator.backends.local.model import DEFAULT_MODEL, ensure_model, verify_model
from ponder.orchestrator.backends.local.server import (
    DEFAULT_CTX_PER_SLOT,
    DEFAULT_N_PARALLEL,
    LlamaServer,
)
from ponder.orchestrator.backends.local.toolchain import find_llama_server
from ponder.orchestrator.backends.openai_compat import OpenAICompatibleBackend
from ponder.orchestrator.requests import Completion, GenerationRequest

LOCAL_TIMEOUT_S = 3600.0
"""Per-request timeout for the local server. Long, because a slow local generation that times out
is retried from scratch (work lost), while a dead server is detected directly, not by timeout."""

__all__ = ["LocalBackend", "LlamaServer", "ensure_model", "find_llama_server", "prepare_local"]


def prepare_local(
    model_path: str | Path | None = None, *, sha256: str | None = None, quiet: bool = False
) -> tuple[Path, Path]:
    """Build/find llama-server and assemble/verify the model; return ``(binary, model)``."""
    binary = find_llama_server(quiet=quiet)
    if model_path is None:
        model = ensure_model(DEFAULT_MODEL, quiet=quiet)
    else:
        model = Path(model_path).expanduser()
        if not model.is_file():
            raise ServerStartError(f"model file {model} does not exist")
        if sha256:
            verify_model(model, sha256, quiet=quiet)
    return binary, model


class LocalBackend(Backend):
    """llama-server + a GGUF model, started lazily on the first call and stopped on ``aclose``."""

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
    ) -> None:
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
        binary, model = prepare_local(self.model_path, sha256=self.sha256, quiet=self.quiet)
        server = LlamaServer(
            binary,
            model,
            n_parallel=self.n_parallel,
            ctx_per_slot=self.ctx_per_slot,
            threads=self.threads,
        )
        server.start()
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
        )

    def _check_alive(self) -> None:
        if self.server is not None and not self.server.alive():
            raise ServerDiedError(
                f"llama-server at {self.server.url} exited (code {self.server.returncode()}); "
                f"last log lines:\n{self.server.log_tail()}"
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
        )

    async def aclose(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.aclose()
        server, self.server = self.server, None
        if server is not None:
            await asyncio.to_thread(server.stop)
