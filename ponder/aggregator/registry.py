"""The registry of aggregator names (mirrors ``ponder.strategies.registry``).

``build_aggregator({"name": "majority"})`` builds one; unknown names raise ``UnknownNameError``
listing the valid choices. Strategy fields holding an aggregator use ``AggregatorField``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import BeforeValidator, ValidationError, ValidationInfo

from ponder.aggregator.base import Aggregator
from ponder.errors import ConfigError, UnknownNameError
from ponder.strategies.registry import format_validation_error

_REGISTRY: dict[str, type[Aggregator]] = {}

A = TypeVar("A", bound=type[Aggregator])


def register_aggregator(cls: A) -> A:
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"aggregator name {name!r} is already registered by {_REGISTRY[name]}")
    _REGISTRY[name] = cls
    return cls


def _load_builtins() -> None:
    import ponder.aggregator  # noqa: F401  (registers the built-in aggregators)


def aggregator_names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def build_aggregator(
    data: Mapping[str, Any] | Aggregator | str, field: str = "aggregator"
) -> Aggregator:
    """Build an aggregator from ``{"name": ..., **params}`` or a bare name."""
    if isinstance(data, Aggregator):
        return data
    if isinstance(data, str):
        data = {"name": data}
    if not isinstance(data, Mapping):
        raise ConfigError(field, f"expected a mapping with a 'name', got {type(data).__name__}")
    _load_builtins()
    params = dict(data)
    name = params.pop("name", None)
    if name is None:
        raise ConfigError(
            f"{field}.name", f"missing; valid choices: {', '.join(aggregator_names())}"
        )
    cls = _REGISTRY.get(str(name))
    if cls is None:
        raise UnknownNameError(f"{field}.name", "aggregator", str(name), list(_REGISTRY))
    try:
        return cls.model_validate(params)
    except ValidationError as exc:
        raise format_validation_error(exc, field) from None
    except ConfigError as exc:
        raise ConfigError(f"{field}.{exc.field}", exc.reason) from None


def _resolve(value: Any, info: ValidationInfo) -> Any:
    return build_aggregator(value, field=info.field_name or "aggregator")


AggregatorField = Annotated[Aggregator, BeforeValidator(_resolve)]
"""Type for an aggregator-valued field; accepts an ``Aggregator``, a name or a config mapping."""
