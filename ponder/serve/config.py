"""The proxy's configuration: where the upstream is, which chains clients may ask for, and limits.

Example ``serve.yaml``::

    upstream: {kind: openai, base_url: https://api.example.com/v1, model: big-model,
               api_key_env: UPSTREAM_API_KEY}       # or {kind: local}
    chains:
      cot: {strategy: {name: cot, max_tokens: 400}}
      sc8: {strategy: {name: sample, k: 8}, budget: {total_tokens: 20000}}
      ssa8:                            # per-chain roles: samples upstream, aggregation elsewhere
        strategy: {name: sample, k: 8, aggregator: {name: ssa}}
        roles: {aggregator: {kind: openai, base_url: http://localhost:8081/v1, model: small}}
    api_key_env: PONDER_PROXY_KEY      # optional: clients must send this key
    trace_dir: traces/                 # optional: one JSONL trace per run, rotated under
    trace_max_mb: 512                  #   a cap: the oldest go past 512 MB
    trace_max_files: 100000            #   or past 100,000 files (0: no cap)
    telemetry: {replica: a}            # optional: metrics/span labels ($PONDER_REPLICA wins)
    limits: {max_body_bytes: 1000000, max_n: 8, max_tokens: 8192, max_concurrent_runs: 32}
    reasoning: {fields: [reasoning_content, reasoning], chain_thinking: true, keep_history: false}

A client picks a chain with the model name ``ponder:<chain>`` or ``ponder:<chain>/<upstream
model>``, or with ``extra_body={"ponder": {"chain": "<chain>"}}``; any other request is passed
through to the upstream unchanged. Keys never live in this file, only the names of env vars.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ponder.config import (
    BackendConfig,
    BackendField,
    ChainParts,
    ConfigFile,
    OpenAIBackendConfig,
    RetryConfig,
)
from ponder.errors import ConfigError
from ponder.named_registry import format_validation_error
from ponder.protocol.strategy import Strategy
from ponder.serve.reasoning import ReasoningConfig
from ponder.serve.telemetry import TelemetryConfig
from ponder.strategies.registry import StrategyField

CHAIN_PREFIX = "ponder:"


class ChainSpec(ChainParts):
    """One named chain: the chain model of a chain file (``ChainParts``: strategy, roles,
    budget, timeout, concurrency, retry) without its ``backend``, which is always the proxy's
    upstream (so ``roles.default`` is refused). Its role backends are built once when the proxy
    starts, and its ``max_concurrency`` holds across all requests to the chain."""

    strategy: StrategyField

    @model_validator(mode="after")
    def _default_is_the_upstream(self) -> ChainSpec:
        if "default" in self.roles:
            raise ConfigError(
                "roles.default", "the default role is the proxy's upstream; set 'upstream' instead"
            )
        return self


def _chains_field(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise ConfigError("chains", "expected a mapping of chain name to {strategy: ...}")
    out: dict[str, ChainSpec] = {}
    for name, spec in value.items():
        name = str(name)
        if not name or "/" in name or name.startswith(CHAIN_PREFIX):
            raise ConfigError(f"chains.{name}", "a chain name must be non-empty, without '/'")
        if isinstance(spec, ChainSpec):
            out[name] = spec
            continue
        if isinstance(spec, Strategy):
            spec = {"strategy": spec}
        if not isinstance(spec, Mapping):
            raise ConfigError(f"chains.{name}", "expected a mapping with a 'strategy'")
        try:
            out[name] = ChainSpec.model_validate(dict(spec))
        except ValidationError as exc:
            raise format_validation_error(exc, f"chains.{name}") from None
        except ConfigError as exc:
            raise ConfigError(f"chains.{name}.{exc.field}", exc.reason) from None
    return out


class ServeLimits(BaseModel):
    """Request limits; a request over any of them gets a 4xx naming the limit."""

    model_config = ConfigDict(extra="forbid")

    max_body_bytes: int = Field(1_000_000, gt=0)
    max_n: int = Field(8, ge=1)
    max_tokens: int = Field(8192, ge=1)
    max_concurrent_runs: int = Field(64, ge=1)


class ServeConfig(ConfigFile):
    """Everything ``ponder serve`` needs. ``ServeConfig.load(path)`` reads YAML or JSON."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    FILE_KIND: ClassVar[str] = "serve config"

    upstream: BackendField = Field(default_factory=lambda: _default_upstream())
    chains: Annotated[dict[str, ChainSpec], BeforeValidator(_chains_field)] = Field(
        default_factory=lambda: _default_chains()
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    allow_remote: bool = False
    api_key_env: str | None = None
    trace_dir: str | None = None
    trace_max_mb: float = Field(512.0, ge=0)
    """``trace_dir``'s size cap in MB: past it the oldest run traces are deleted (0: none)."""
    trace_max_files: int = Field(100_000, ge=0)
    """``trace_dir``'s cap in files: past it the oldest run traces are deleted (0: none)."""
    limits: ServeLimits = Field(default_factory=lambda: ServeLimits.model_validate({}))
    retry: RetryConfig | None = None
    """The default ``retry`` of chains that set none (``RetryConfig``'s defaults if unset)."""
    keepalive_s: float = Field(5.0, gt=0)
    telemetry: TelemetryConfig = Field(default_factory=lambda: TelemetryConfig.model_validate({}))
    """Replica name, ``/metrics``, message content in spans (``ponder.serve.telemetry``)."""
    reasoning: ReasoningConfig = Field(default_factory=ReasoningConfig)
    """A reasoning model's thinking: which fields a chain's answer carries it in, whether it does,
    and whether earlier turns' thinking goes upstream (``ponder.serve.reasoning``)."""
    shutdown_grace_s: float = Field(30.0, ge=0)

    @model_validator(mode="after")
    def _loopback_unless_allowed(self) -> ServeConfig:
        if not self.allow_remote and not is_loopback(self.host):
            raise ConfigError(
                "host",
                f"{self.host!r} is not a loopback address; set allow_remote: true (and an "
                "api_key_env) to listen beyond this machine",
            )
        return self

    def chain_names(self) -> list[str]:
        return sorted(self.chains)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _default_upstream() -> BackendConfig:
    from ponder.config import LocalBackendConfig

    return LocalBackendConfig.model_validate({})


def _default_chains() -> dict[str, ChainSpec]:
    return {"cot": ChainSpec.model_validate({"strategy": {"name": "cot"}})}


__all__ = [
    "CHAIN_PREFIX",
    "ChainSpec",
    "OpenAIBackendConfig",
    "RetryConfig",
    "ServeConfig",
    "ServeLimits",
]
