"""The one explicit registry of strategy names.

``@register_strategy`` adds a class under its ``name``; ``build_strategy`` turns a config mapping
(``{"name": "cot", ...}``) into a strategy, with errors that name the field and the valid choices.
Strategy fields that hold another strategy use the ``StrategyField`` type so nested configs resolve
through this registry too.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ValidationInfo

from ponder.named_registry import NamedRegistry, format_validation_error
from ponder.protocol.strategy import Strategy

BUILTIN_MODULES = ("ponder.strategies",)
"""The package whose import registers every online strategy (cot, sample, adaptive, deepconf,
summarize, tool_loop, drr_think, drr_sample, drr_feedback). Named as data, not imported here, so
the registry stays below the strategies: they import it, not the other way round. Offline
strategies register themselves when their package is imported (``collect``: ``ponder.learning``,
which the CLI imports)."""


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


_REGISTRY: NamedRegistry[Strategy] = NamedRegistry(
    "strategy",
    Strategy,  # type: ignore[type-abstract]
    _load_builtins,
)

S = TypeVar("S", bound=type[Strategy])


def register_strategy(cls: S) -> S:
    return _REGISTRY.register(cls)


def strategy_names() -> list[str]:
    return _REGISTRY.names()


def build_strategy(data: Mapping[str, Any] | Strategy, field: str = "strategy") -> Strategy:
    """Build a strategy from ``{"name": ..., **params}``; errors name ``field`` and its path."""
    return _REGISTRY.build(data, field)


def _resolve_nested(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, Strategy):
        return value
    # A ConfigError is not a ValueError, so pydantic lets it through; the enclosing
    # build_strategy prefixes its own field path to it.
    return build_strategy(value, field=info.field_name or "strategy")


StrategyField = Annotated[Strategy, BeforeValidator(_resolve_nested)]
"""Type for a strategy-valued field; accepts a ``Strategy`` or a config mapping."""


__all__ = [
    "StrategyField",
    "build_strategy",
    "format_validation_error",
    "register_strategy",
    "strategy_names",
]
