"""One mechanism for the name registries (strategies, aggregators).

``NamedRegistry`` maps a registered ``name`` to a pydantic class and builds instances from config
mappings (``{"name": ..., **params}``) or bare names, with errors that name the field and list
the valid choices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from ponder.errors import ConfigError, UnknownNameError

T = TypeVar("T", bound=BaseModel)
C = TypeVar("C", bound=type)


class NamedRegistry(Generic[T]):
    def __init__(self, kind: str, base: type[T], load_builtins: Callable[[], None]) -> None:
        self.kind = kind
        self.base = base
        self._load_builtins = load_builtins
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: C) -> C:
        name = cls.name  # type: ignore[attr-defined]
        existing = self._classes.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(f"{self.kind} name {name!r} is already registered by {existing}")
        self._classes[name] = cls  # type: ignore[assignment]
        return cls

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def names(self) -> list[str]:
        self._load_builtins()
        return sorted(self._classes)

    def build(self, data: Any, field: str) -> T:
        if isinstance(data, self.base):
            return data
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, Mapping):
            raise ConfigError(field, f"expected a mapping with a 'name', got {type(data).__name__}")
        self._load_builtins()
        params = dict(data)
        name = params.pop("name", None)
        if name is None:
            raise ConfigError(f"{field}.name", f"missing; valid choices: {', '.join(self.names())}")
        cls = self._classes.get(str(name))
        if cls is None:
            raise UnknownNameError(f"{field}.name", self.kind, str(name), list(self._classes))
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
