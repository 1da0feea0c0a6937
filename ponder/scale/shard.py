"""``--shard i/n``: run one of n deterministic parts of a job, for array jobs without Ray.

Use ``Shard.parse("3/8")`` (shards count from 0, like Kubernetes' ``JOB_COMPLETION_INDEX`` and
Slurm's ``--array=0-7``) and ``shard.select(items, id_of)``: an item belongs to shard
``sha256(id) mod n``, so the split depends only on the ids (not on the order, the machine or the
Python hash seed) and every id lands in exactly one shard. ``write_shard_file`` records beside
a shard's output which shard it is and what it was made with (the run's manifest, settings and
data); ``ponder merge`` (``ponder.scale.merge``) refuses shards whose manifests differ.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from ponder.errors import ConfigError, InputError

T = TypeVar("T")
FORMAT = "ponder.shard/1"
Kind = Literal["eval", "collect", "rft"]


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (0 ≤ index < count)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"i/n"``, or an ``InputError`` that says what is wrong."""
        i, sep, n = text.strip().partition("/")
        try:
            index, count = int(i), int(n)
        except ValueError:
            index = count = -1
        if not sep or count < 1:
            raise InputError(
                f"--shard {text!r}: give i/n, shard i of n counting from 0 (e.g. --shard 0/4)"
            )
        if not 0 <= index < count:
            raise InputError(
                f"--shard {text}: there is no shard {index} of {count}; "
                f"shards count from 0, so i must be 0..{count - 1}"
            )
        return cls(index, count)

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, key: str) -> bool:
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def select(self, items: Sequence[T], id_of: Callable[[T], str]) -> list[T]:
        """The items of this shard, in their order."""
        return [it for it in items if self.holds(id_of(it))]


class ShardFile(BaseModel):
    """``shard.json`` beside a shard's output: which shard, of what kind of job, made how."""

    model_config = ConfigDict(extra="forbid")

    format: str = FORMAT
    kind: Kind
    shard: tuple[int, int]
    manifest: dict[str, Any]
    """What the whole job was made with: equal in every shard of one job (``created`` aside)."""


def shard_file_path(out: str | Path, kind: Kind) -> Path:
    """Where a shard's ``ShardFile`` goes: ``OUT/shard.json`` for a directory output (eval,
    collect), ``OUT.shard.json`` beside a file output (``ssa rft``)."""
    out = Path(out)
    return out.with_name(out.name + ".shard.json") if kind == "rft" else out / "shard.json"


def without_created(value: Any) -> Any:
    """``value`` with every ``created`` key dropped (when a manifest was written differs)."""
    if isinstance(value, dict):
        return {k: without_created(v) for k, v in value.items() if k != "created"}
    if isinstance(value, list):
        return [without_created(v) for v in value]
    return value


def write_shard_file(out: str | Path, kind: Kind, shard: Shard, manifest: dict[str, Any]) -> Path:
    """Record ``shard`` beside ``out``; a rerun into the same place must be the same shard of
    the same job (else a ``ConfigError``)."""
    path = shard_file_path(out, kind)
    new = ShardFile(kind=kind, shard=(shard.index, shard.count), manifest=manifest)
    if path.is_file():
        old = ShardFile.model_validate_json(path.read_text(encoding="utf-8"))
        if old.shard != new.shard or without_created(old.manifest) != without_created(new.manifest):
            raise ConfigError(
                "shard",
                f"{path} belongs to shard {old.shard[0]}/{old.shard[1]} of another run or "
                f"setting; use a new --out for shard {shard.label}",
            )
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(new.model_dump(), indent=2), encoding="utf-8")
    tmp.replace(path)
    return path
