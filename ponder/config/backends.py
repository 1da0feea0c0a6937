"""Backend configs: what serves a role (``kind: local | openai | vllm | reward_model``), validated.

Use ``build_backend_config({kind: ..., **params})`` (or the ``BackendField``/``RolesField`` field
types in a model) to read one from a chain or serve file; ``BackendConfig.build()`` makes the
backend. A new backend kind is a ``BackendConfig`` subclass with ``__kind__`` and ``build`` (it
registers in ``BACKEND_KINDS``, whose unknown-name errors list the valid kinds). Re-exported by
``ponder.config``, where chains are configured.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator

from ponder.backends.base import Backend
from ponder.backends.reward import ApiFormat
from ponder.errors import ConfigError
from ponder.named_registry import NamedRegistry


class BackendConfig(BaseModel):
    """Base of backend configs. A subclass that sets ``__kind__`` registers under it (in the
    one name registry, ``BACKEND_KINDS``); ``build`` makes the backend."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    __kind__: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__kind__:
            BACKEND_KINDS.add(cls.__kind__, cls, replace=True)

    def build(self) -> Backend:
        raise NotImplementedError


BACKEND_KINDS: NamedRegistry[BackendConfig] = NamedRegistry(
    "backend kind", BackendConfig, key="kind"
)
"""Backend configs by ``kind`` (filled by ``BackendConfig`` subclasses as they are defined)."""


class LocalBackendConfig(BackendConfig):
    """The embedded llama.cpp server. ``model_path`` defaults to the verified default model;
    ``model`` names one instead: a built-in model or one registered by ``ponder ssa export``
    (``ponder.backends.local.registry``; verified by its sha256 before serving).
    ``runtime`` is ``auto`` (the prebuilt wheel, or the native build once measured faster),
    ``prebuilt`` or ``native`` (see ``ponder/backends/local/runtime.py``). ``thinking: true``
    serves the model in the thinking format (a think-first system prompt, ``thinking_template``,
    and a ``<think>`` prefill; docs/reasoning.md)."""

    __kind__ = "local"
    kind: Literal["local"] = "local"
    runtime: Literal["auto", "prebuilt", "native"] = "auto"
    model: str | None = None
    model_path: str | None = None
    sha256: str | None = None
    n_parallel: int = Field(8, ge=1, le=64)
    ctx_per_slot: int = Field(4096, ge=256)
    threads: int | None = Field(None, ge=1)
    timeout_s: float = Field(3600.0, gt=0)
    thinking: bool = False
    thinking_template: str = "think_first_system"

    @model_validator(mode="after")
    def _one_model(self) -> LocalBackendConfig:
        if self.thinking:
            from ponder.backends.thinking_format import check_template

            check_template(self.thinking_template)
        if self.model is not None and (self.model_path is not None or self.sha256 is not None):
            raise ConfigError(
                "model",
                "give either model (a name) or model_path (+ sha256), not both",
            )
        return self

    def resolved(self) -> tuple[str | None, str | None, Any]:
        """``(model_path, sha256, spec)`` for the backend: ``model`` looked up by name (an
        unknown name is a ``ConfigError`` listing the valid ones), else the fields as given."""
        if self.model is None:
            return self.model_path, self.sha256, None
        from ponder.backends.local.registry import RegisteredModel, resolve_model

        found = resolve_model(self.model)
        if isinstance(found, RegisteredModel):
            return found.file, found.sha256, None
        return None, None, found

    def build(self) -> Backend:
        from ponder.backends.local import LocalBackend

        model_path, sha256, spec = self.resolved()
        return LocalBackend(
            model_path,
            sha256=sha256,
            spec=spec,
            n_parallel=self.n_parallel,
            ctx_per_slot=self.ctx_per_slot,
            threads=self.threads,
            timeout_s=self.timeout_s,
            runtime=self.runtime,
            thinking=self.thinking,
            thinking_template=self.thinking_template,
        )


class OpenAIBackendConfig(BackendConfig):
    """Any OpenAI-compatible endpoint. The key comes from the env var named by ``api_key_env``."""

    __kind__ = "openai"
    kind: Literal["openai"] = "openai"
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(600.0, gt=0)
    max_concurrency: int = Field(16, ge=1)
    n_mode: Literal["auto", "native", "fanout"] = "auto"
    tokenize_url: str | None = None
    """A tokenizer endpoint for exact token counts where the server's usage does not give them
    (each of n > 1 choices): llama.cpp's or vLLM's ``/tokenize``, e.g.
    ``http://127.0.0.1:8000/tokenize``. Without it such counts are estimates."""
    apply_template_url: str | None = None
    """llama.cpp's ``/apply-template``: lets strategies continue a partial answer (probes,
    segments, summaries) with raw completions in the model's own chat template."""
    continuation: Literal["auto", "none", "prefill", "template"] = "auto"
    thinking_markers: tuple[str, str] | None = ("<think>", "</think>")
    """The markers around a reasoning model's thinking when it comes inline in the content (no
    ``reasoning_content``/``reasoning`` field): split off as the completion's thinking;
    ``null`` reads the content as all answer. See docs/reasoning.md."""
    thinking_budget: Literal[
        "auto",
        "forcing",
        "none",
        "reasoning_effort",
        "thinking_token_budget",
        "thinking_budget_tokens",
    ] = "auto"
    """How a thinking budget is held here: the upstream's native knob (OpenAI's
    ``reasoning_effort``, vLLM's ``thinking_token_budget``, llama.cpp's
    ``thinking_budget_tokens``), ``forcing`` (Ponder closes the thinking and continues; needs
    continuation), ``none`` (refused), ``auto`` (forcing where continuation is set, else none)."""

    def build(self) -> Backend:
        from ponder.backends.openai_compat import OpenAICompatibleBackend

        return OpenAICompatibleBackend(
            base_url=self.base_url,
            model=self.model,
            api_key=os.environ.get(self.api_key_env),
            timeout_s=self.timeout_s,
            max_concurrency=self.max_concurrency,
            n_mode=self.n_mode,
            tokenize_url=self.tokenize_url,
            apply_template_url=self.apply_template_url,
            continuation=self.continuation,
            thinking_markers=self.thinking_markers,
            thinking_budget=self.thinking_budget,
        )


class VLLMBackendConfig(BackendConfig):
    """vLLM in this process (needs ``ponder[vllm]``). ``model``: HF directory, GGUF file (converted
    once and cached) or ``None`` for the default model. See docs/vllm.md."""

    __kind__ = "vllm"
    kind: Literal["vllm"] = "vllm"
    model: str | None = None
    dtype: Literal["bfloat16", "float16", "float32", "auto"] = "bfloat16"
    max_model_len: int = Field(2048, ge=128)
    enforce_eager: bool | None = None  # None: eager on CPU, compiled on GPU
    enable_prefix_caching: bool = True
    seed: int = 0
    engine_args: dict[str, Any] = Field(default_factory=dict)
    thinking_markers: tuple[str, str] | None = ("<think>", "</think>")
    """As ``OpenAIBackendConfig.thinking_markers`` (the engine returns the raw text)."""

    def build(self) -> Backend:
        from ponder.backends.vllm_engine import VLLMBackend

        return VLLMBackend(
            self.model,
            dtype=self.dtype,
            max_model_len=self.max_model_len,
            enforce_eager=self.enforce_eager,
            enable_prefix_caching=self.enable_prefix_caching,
            seed=self.seed,
            engine_args=self.engine_args,
            thinking_markers=self.thinking_markers,
        )


class RewardModelBackendConfig(BackendConfig):
    """A reward model over HTTP, for ``scorer: {kind: reward_model}`` (role ``reward``). It scores
    and never generates. ``api_format`` names the wire format (``vllm_pooling``: ``POST
    {base_url}/pooling``; ``vllm_classify``: ``POST {base_url}/classify``); see
    ``ponder.backends.reward``."""

    __kind__ = "reward_model"
    kind: Literal["reward_model"] = "reward_model"
    base_url: str = Field(min_length=1)
    model: str | None = None
    api_format: ApiFormat = "vllm_pooling"
    label_index: int = -1
    extra_body: dict[str, Any] = Field(default_factory=dict)
    api_key_env: str | None = None
    timeout_s: float = Field(120.0, gt=0)

    def build(self) -> Backend:
        from ponder.backends.reward import RewardModelBackend

        return RewardModelBackend(
            base_url=self.base_url,
            model=self.model,
            api_format=self.api_format,
            label_index=self.label_index,
            extra_body=self.extra_body,
            api_key=os.environ.get(self.api_key_env) if self.api_key_env else None,
            timeout_s=self.timeout_s,
        )


def build_backend_config(data: Any, field: str = "backend") -> BackendConfig:
    """A backend config from ``{kind: ..., **params}`` (``kind`` defaults to ``local``)."""
    return BACKEND_KINDS.build(data, field, default="local")


def _backend_field(value: Any, info: ValidationInfo) -> Any:
    return build_backend_config(value, field=info.field_name or "backend")


def _roles_field(value: Any, info: ValidationInfo) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError("roles", "expected a mapping of role name to backend config")
    return {str(k): build_backend_config(v, field=f"roles.{k}") for k, v in value.items()}


BackendField = Annotated[BackendConfig, BeforeValidator(_backend_field)]
RolesField = Annotated[dict[str, BackendConfig], BeforeValidator(_roles_field)]
"""Backends for roles other than ``default`` (``aggregator``, ``reward``, ...), each validated as
a backend config; a request for a role not listed goes to the default backend."""
