"""One mechanism for every name registry: strategies, aggregators, scorer kinds, backend kinds
and tools.

``Registry`` maps a name to an entry (a class, a function, a ``Tool``) and looks names up with
errors that name the field and list the valid choices; built-ins register lazily on first
lookup. ``NamedRegistry`` is a ``Registry`` of pydantic classes keyed by an attribute (``name``
for strategies and aggregators, ``kind`` for backends) that also builds instances from config
mappings (``{"name": ..., **params}``) or bare names.

To add an entry, decorate it: ``@register_strategy``, ``@register_aggregator``,
``@register_scorer("kind")``, ``@tool``; a ``BackendConfig`` subclass registers under its
``__kind__``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ponder.errors import ConfigError, UnknownNameError

E = TypeVar("E")
T = TypeVar("T", bound=BaseModel)
C = TypeVar("C", bound=type)


def _nothing() -> None:
    return None


class Registry(Generic[E]):
    """Names to entries, with errors listing the valid names; ``load_builtins`` runs before any
    lookup (it imports the modules whose decorators register the built-ins)."""

    def __init__(self, kind: str, load_builtins: Callable[[], None] = _nothing) -> None:
        self.kind = kind
        self._load_builtins = load_builtins
        self._entries: dict[str, E] = {}

    def add(self, name: str, entry: E, *, replace: bool = False) -> E:
        existing = self._entries.get(name)
        if existing is not None and existing is not entry and not replace:
            raise ValueError(f"{self.kind} name {name!r} is already registered by {existing}")
        self._entries[name] = entry
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._entries)

    def get(self, name: str, field: str) -> E:
        """The entry for ``name``, or an ``UnknownNameError`` at ``field`` listing the choices."""
        if name not in self._entries:
            self._load_builtins()
        if name not in self._entries:
            raise UnknownNameError(field, self.kind, name, list(self._entries))
        return self._entries[name]


class NamedRegistry(Registry[type[T]]):
    """A ``Registry`` of pydantic classes, keyed by their ``key`` attribute, that builds them."""

    def __init__(
        self,
        kind: str,
        base: type[T],
        load_builtins: Callable[[], None] = _nothing,
        *,
        key: str = "name",
    ) -> None:
        super().__init__(kind, load_builtins)
        self.base = base
        self.key = key

    def register(self, cls: C) -> C:
        self.add(getattr(cls, self.key), cls)  # type: ignore[arg-type]
        return cls

    def build(self, data: Any, field: str, *, default: str | None = None) -> T:
        """An instance from ``{key: ..., **params}`` (or a bare name): the key is popped for
        ``name``-keyed registries and kept (it is a field) for ``kind``-keyed ones."""
        if isinstance(data, self.base):
            return data
        if isinstance(data, str):
            data = {self.key: data}
        if not isinstance(data, Mapping):
            raise ConfigError(
                field, f"expected a mapping with a '{self.key}', got {type(data).__name__}"
            )
        params = dict(data)
        name = params.pop(self.key, default)
        if name is None:
            raise ConfigError(
                f"{field}.{self.key}", f"missing; valid choices: {', '.join(self.names())}"
            )
        cls = self.get(str(name), f"{field}.{self.key}")
        if self.key != "name":
            params[self.key] = name
        try:
            return cls.model_validate(params)
        except ValidationError as exc:
            raise format_validation_error(exc, field) from None
        except ConfigError as exc:  # from a nested config: prefix our own path
            raise ConfigError(f"{field}.{exc.field}", exc.reason) from None


def format_validation_error(exc: ValidationError, prefix: str) -> ConfigError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    field = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    more = f" (and {len(exc.errors()) - 1} more problem(s))" if len(exc.errors()) > 1 else ""
    return ConfigError(field, f"{msg}{more}")
