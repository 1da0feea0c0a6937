"""Chain configuration: a whole run (backends, strategy, budget) as YAML/JSON or Python.

Example ``chain.yaml``::

    backend: {kind: local}                # or {kind: openai, base_url: ..., model: ...}
    roles:                                # optional: other backends for other roles
      aggregator: {kind: local}
      reward: {kind: reward_model, base_url: "http://localhost:8001"}   # reward_model scorers
    strategy: {name: cot, max_tokens: 400}
    budget: {total_tokens: 4000}

``ChainConfig.load(path)`` validates it; every error is a ``ConfigError`` naming the field (for
example ``strategy.max_tokens``) and, for names, the valid choices. API keys never live in config
files: ``api_key_env`` names the environment variable that holds one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from ponder.backends.base import Backend
from ponder.backends.reward import ApiFormat
from ponder.errors import ConfigError
from ponder.named_registry import NamedRegistry, format_validation_error
from ponder.orchestrator.engine import Orchestrator
from ponder.orchestrator.policy import DEFAULT_TOOL_TIMEOUT_S, RetryPolicy, RunLimits
from ponder.orchestrator.session import Session
from ponder.protocol.strategy import Strategy
from ponder.protocol.thinking_budget import (
    DEFAULT_ANSWER_TOKENS,
    DEFAULT_EFFORT_BUDGETS,
    ThinkingBudget,
    budget_for,
)
from ponder.strategies.registry import StrategyField

# -- backends -----------------------------------------------------------------------------------


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


# -- the chain ----------------------------------------------------------------------------------


class BudgetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total_tokens: int | None = Field(None, gt=0)


class ThinkingConfig(BaseModel):
    """How ``reasoning_effort`` maps to thinking tokens per call (``efforts``), and the answer's
    allowance after a cut thinking (``answer_tokens``); docs/reasoning.md."""

    model_config = ConfigDict(extra="forbid")
    efforts: dict[str, Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_EFFORT_BUDGETS)
    )
    answer_tokens: int = Field(DEFAULT_ANSWER_TOKENS, gt=0)

    def budget(self, tokens: int | None, effort: str | None) -> ThinkingBudget | None:
        """The budget for explicit ``tokens`` or an ``effort`` of ``efforts``."""
        return budget_for(tokens, effort, self.efforts, self.answer_tokens)


_RETRY = RetryPolicy()


class RetryConfig(BaseModel):
    """Retries of retryable backend errors (429, 5xx, timeouts, dropped connections): the one
    policy of ``ponder run``, ``ponder eval`` and ``ponder serve`` (``retry:`` in a chain or serve
    file); the defaults are ``RetryPolicy``'s."""

    model_config = ConfigDict(extra="forbid")

    max_attempts: int = Field(_RETRY.max_attempts, ge=1)
    initial_backoff_s: float = Field(_RETRY.initial_backoff_s, ge=0)
    max_backoff_s: float = Field(_RETRY.max_backoff_s, ge=0)
    jitter_s: float = Field(_RETRY.jitter_s, ge=0)
    max_retry_after_s: float = Field(_RETRY.max_retry_after_s, ge=0)

    def policy(self) -> RetryPolicy:
        return RetryPolicy(**self.model_dump())


class ConfigFile(BaseModel):
    """A model read from a YAML or JSON file (a chain file, ``ponder serve``'s file): ``load``
    reads one, ``from_dict`` validates its data; every error is a ``ConfigError`` naming the field
    (and the file)."""

    FILE_KIND: ClassVar[str] = "config"
    """What the file holds, as an error names it (``a chain config must be a mapping``)."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        if not isinstance(data, Mapping):
            raise ConfigError("", f"a {cls.FILE_KIND} must be a mapping, got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise format_validation_error(exc, "") from None

    @classmethod
    def load(cls, path: str | Path) -> Self:
        """Read and validate a ``.yaml``/``.yml``/``.json`` file."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
        kind = "JSON" if path.suffix == ".json" else "YAML"
        try:
            data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise ConfigError("", f"{path} is not valid {kind}: {exc}") from None
        try:
            return cls.from_dict(data or {})
        except ConfigError as exc:
            raise ConfigError(exc.field, f"{exc.reason} (in {path})") from None


class ChainParts(BaseModel):
    """What every chain has, in a chain file and in a proxy's ``chains:`` alike: the strategy,
    backends for its other roles, the per-run limits (``budget``, ``timeout_s``), the calls in
    flight at once across all runs (``max_concurrency``) and the ``retry`` policy.

    A role listed in ``roles`` that the strategy never uses is a ``ConfigError`` naming it and the
    roles the strategy does use (a misspelt ``aggregater:`` would otherwise be ignored); a role the
    strategy uses but ``roles`` does not list goes to the default backend."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    roles: RolesField = Field(default_factory=dict)
    strategy: StrategyField = Field(default_factory=lambda: _default_strategy())
    budget: BudgetConfig = Field(default_factory=lambda: BudgetConfig.model_validate({}))
    max_concurrency: int = Field(16, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    retry: RetryConfig = Field(default_factory=lambda: RetryConfig.model_validate({}))
    tool_timeout_s: float = Field(DEFAULT_TOOL_TIMEOUT_S, gt=0)
    """How long the engine waits for one tool call (``CallTool``) before the model reads an
    ``error:`` result instead."""
    thinking_budget: int | None = Field(None, gt=0)
    """Thinking tokens per call (docs/reasoning.md, "Bounding thinking"); wins over
    ``reasoning_effort``."""
    reasoning_effort: str | None = None
    """``low``, ``medium`` or ``high`` (or a name in ``thinking.efforts``): a thinking budget
    per call from ``thinking.efforts``."""
    thinking: ThinkingConfig = Field(default_factory=lambda: ThinkingConfig.model_validate({}))

    @model_validator(mode="after")
    def _effort_known(self) -> ChainParts:
        effort = self.reasoning_effort
        if effort is not None and effort not in self.thinking.efforts:
            raise ConfigError(
                "reasoning_effort",
                f"got {effort!r}; valid choices: {', '.join(self.thinking.efforts)}",
            )
        return self

    @model_validator(mode="after")
    def _roles_are_used(self) -> ChainParts:
        used = self.strategy.roles() | {"default"}
        for role in self.roles:
            if role not in used:
                raise ConfigError(
                    f"roles.{role}",
                    f"the strategy {self.strategy.name!r} never sends requests to role {role!r}; "
                    f"the roles it uses: {', '.join(sorted(used))}",
                )
        return self

    def limits(self) -> RunLimits:
        """The default ``RunLimits`` of each run of this chain."""
        return RunLimits(
            total_tokens=self.budget.total_tokens,
            timeout_s=self.timeout_s,
            thinking=self.thinking_limit(),
        )

    def thinking_limit(self) -> ThinkingBudget | None:
        """The thinking budget of each call of this chain (``None``: unbounded)."""
        return self.thinking.budget(self.thinking_budget, self.reasoning_effort)


class ChainConfig(ChainParts, ConfigFile):
    """A complete, validated chain: what to run (``strategy``) and against what (``backend``).

    ``ChainConfig.load(path)`` reads a chain file; ``session()`` builds the long-lived
    ``Session`` that runs it (``async with``)."""

    FILE_KIND: ClassVar[str] = "chain config"

    backend: BackendField = Field(default_factory=LocalBackendConfig)

    def build_backends(self) -> dict[str, Backend]:
        backends = {"default": _build(self.backend, "backend")}
        for role, cfg in self.roles.items():
            backends[role] = _build(cfg, f"roles.{role}")
        return backends

    def session(self, backends: Mapping[str, Backend] | None = None) -> Session:
        """The ``Session`` for this chain: its backends built here (or ``backends``, which the
        caller then closes), its concurrency limit, retry policy and default limits."""
        return Session.from_config(self, backends)

    def build_orchestrator(self, backends: Mapping[str, Backend] | None = None) -> Orchestrator:
        """An orchestrator without lifetime management; prefer ``session()``."""
        return self.session(backends)


def _build(cfg: BackendConfig, where: str) -> Backend:
    """``cfg.build()``, a ``ConfigError`` it raises (an unknown model name) naming the field in
    the chain (``roles.aggregator.model``)."""
    try:
        return cfg.build()
    except ConfigError as exc:
        raise ConfigError(f"{where}.{exc.field}" if exc.field else where, exc.reason) from exc


def _default_strategy() -> Strategy:
    from ponder.strategies.cot import ChainOfThought

    return ChainOfThought()
