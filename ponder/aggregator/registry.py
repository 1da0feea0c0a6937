"""The registry of aggregator names (mirrors ``ponder.strategies.registry``).

``build_aggregator({"name": "majority"})`` builds one; unknown names raise ``UnknownNameError``
listing the valid choices. Strategy fields holding an aggregator use ``AggregatorField``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ValidationInfo

from ponder.aggregator.base import Aggregator
from ponder.named_registry import NamedRegistry


def _load_builtins() -> None:
    import ponder.aggregator  # noqa: F401  (registers the built-in aggregators)


_REGISTRY: NamedRegistry[Aggregator] = NamedRegistry("aggregator", Aggregator, _load_builtins)

A = TypeVar("A", bound=type[Aggregator])


def register_aggregator(cls: A) -> A:
    return _REGISTRY.register(cls)


def aggregator_names() -> list[str]:
    return _REGISTRY.names()


def build_aggregator(
    data: Mapping[str, Any] | Aggregator | str, field: str = "aggregator"
) -> Aggregator:
    """Build an aggregator from ``{"name": ..., **params}`` or a bare name."""
    return _REGISTRY.build(data, field)


def _resolve(value: Any, info: ValidationInfo) -> Any:
    return build_aggregator(value, field=info.field_name or "aggregator")


AggregatorField = Annotated[Aggregator, BeforeValidator(_resolve)]
"""Type for an aggregator-valued field; accepts an ``Aggregator``, a name or a config mapping."""
