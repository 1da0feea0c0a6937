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
files: ``api_key_env`` names the environment variable that holds one. The backend configs
(``kind: local | openai | vllm | reward_model``) live in ``ponder.config.backends`` and are
re-exported here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, ClassVar, Self

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ponder.backends.base import Backend
from ponder.backends.thinking_format import answer_lead_text, check_answer_lead
from ponder.config.backends import (
    BACKEND_KINDS,
    BackendConfig,
    BackendField,
    LocalBackendConfig,
    OpenAIBackendConfig,
    RewardModelBackendConfig,
    RolesField,
    VLLMBackendConfig,
    build_backend_config,
)
from ponder.errors import ConfigError
from ponder.named_registry import format_validation_error
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

__all__ = [
    "BACKEND_KINDS",
    "BackendConfig",
    "BackendField",
    "BudgetConfig",
    "ChainConfig",
    "ChainParts",
    "ConfigFile",
    "LocalBackendConfig",
    "OpenAIBackendConfig",
    "RetryConfig",
    "RewardModelBackendConfig",
    "RolesField",
    "ThinkingConfig",
    "VLLMBackendConfig",
    "build_backend_config",
]

# -- the chain ----------------------------------------------------------------------------------


class BudgetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total_tokens: int | None = Field(None, gt=0)


class ThinkingConfig(BaseModel):
    """How ``reasoning_effort`` maps to thinking tokens per call (``efforts``), the answer's
    allowance after a cut thinking (``answer_tokens``), and the template whose text forcing writes
    after the closing marker (``answer_lead``, e.g. ``answer_lead``; none by default);
    docs/reasoning.md."""

    model_config = ConfigDict(extra="forbid")
    efforts: dict[str, Annotated[int, Field(gt=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_EFFORT_BUDGETS)
    )
    answer_tokens: int = Field(DEFAULT_ANSWER_TOKENS, gt=0)
    answer_lead: str | None = None

    @field_validator("answer_lead")
    @classmethod
    def _answer_lead(cls, v: str | None) -> str | None:
        return check_answer_lead(v, "thinking.answer_lead")

    def budget(self, tokens: int | None, effort: str | None) -> ThinkingBudget | None:
        """The budget for explicit ``tokens`` or an ``effort`` of ``efforts``."""
        lead = answer_lead_text(self.answer_lead)
        return budget_for(tokens, effort, self.efforts, self.answer_tokens, lead)


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

    @model_validator(mode="after")
    def _strategy_fits_backend(self) -> ChainConfig:
        """A strategy that reasons in (or not in) the thinking format on a local backend that
        serves it otherwise is refused (``Strategy.check_backend``)."""
        b = self.backend
        if isinstance(b, LocalBackendConfig):
            self.strategy.check_backend(b.thinking_template if b.thinking else None)
        return self

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
