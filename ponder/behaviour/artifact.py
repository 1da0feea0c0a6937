"""The base of every learned artifact: one JSON file, a format version, and the reasoner it judges.

A subclass (the DRR judge ``ponder.stopping.model.DM``, the learned aggregator's
``LearnedArtifact``) declares its fields, including ``format: str = FORMAT`` and
``manifest: Manifest`` (the training collection's), and the class settings below; it gets::

    Art.load(path)             # "default": the one shipped in DEFAULT; cached per (path, mtime)
    art.save(path)             # atomic write; the JSON layout is the subclass's (JSON_INDENT)
    art.check_reasoner(m)      # refuse a collection/run of another reasoner (ReasonerMismatch)
    art.check_live(t, s)       # refuse live template hashes or settings unlike the training's
    art.check_names(ids)       # refuse samples that name another model

Each check names what differs and how to override it (``OVERRIDE``); ``allow_other=True`` skips
it. What identifies a reasoner is ``ModelInfo`` (its sha256, else its name) plus the prompt
template hashes (``Manifest.reasoner_key``).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

from pydantic import BaseModel

from ponder.behaviour.records import Manifest
from ponder.errors import ConfigError, InputError


class ReasonerMismatch(ConfigError):
    """An artifact was asked to judge a reasoner (model, prompts, settings) it was not made for."""


class Artifact(BaseModel):
    """A learned artifact (see the module doc). Fields are declared by subclasses, so each keeps
    its own JSON key order."""

    FORMAT: ClassVar[str]
    """The ``format`` this Ponder reads and writes, e.g. ``"ponder.dm/1"``."""
    KIND: ClassVar[str]
    """What it is, in messages: ``"DM"``, ``"learned aggregator"``."""
    FIELD: ClassVar[str]
    """The config field that names the artifact, for ``ConfigError``s."""
    DEFAULT: ClassVar[Path | None] = None
    """The artifact shipped for the default model (``"default"``), if any."""
    TRAIN: ClassVar[str] = ""
    """How to train one, for messages."""
    OVERRIDE: ClassVar[str] = "set allow_other_reasoner: true"
    """How a user says "use it anyway", for messages."""
    JSON_INDENT: ClassVar[int | None] = None
    """``save`` layout: compact, or indented with a final newline."""

    if TYPE_CHECKING:  # declared by every subclass (see the class doc)
        format: str
        manifest: Manifest

    # -- files -----------------------------------------------------------------------------

    @classmethod
    def load(cls, ref: str | Path) -> Self:
        """The artifact at ``ref`` (``"default"``: the one shipped for the default model)."""
        if str(ref) == "default":
            if cls.DEFAULT is None or not cls.DEFAULT.is_file():
                raise InputError(
                    f"no default {cls.KIND} artifact ships with this Ponder; train one "
                    f"({cls.TRAIN}) and give its path"
                )
            ref = cls.DEFAULT
        p = Path(ref).expanduser().resolve()
        if not p.is_file():
            raise InputError(f"{cls.KIND} artifact {p} not found (train one: {cls.TRAIN})")
        art = _read(cls, str(p), p.stat().st_mtime_ns)
        assert isinstance(art, cls)
        return art

    def save(self, path: str | Path) -> Path:
        """Write the artifact to ``path`` (atomically: a temporary file, then a rename)."""
        out = Path(path).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        if self.JSON_INDENT is None:
            text = self.model_dump_json()
        else:
            text = self.model_dump_json(indent=self.JSON_INDENT) + "\n"
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
        return out

    def validate_loaded(self, path: str) -> None:
        """Refuse a file this Ponder cannot use (beyond its format); subclasses add checks."""

    # -- the reasoner ------------------------------------------------------------------------

    def check_reasoner(
        self, manifest: Manifest, allow_other: bool = False, *, label: str | None = None
    ) -> None:
        """Refuse a collection (or run) whose model or prompt templates differ from training."""
        if allow_other:
            return
        diffs = self.manifest.reasoner_differences(manifest, ("training", "judged"))
        if not diffs:
            return
        raise ReasonerMismatch(
            self.FIELD,
            f"{label or 'this ' + self.KIND} was trained on reasoner "
            f"{self.manifest.model.describe()}, not on the one it is asked to judge: "
            f"{'; '.join(diffs)}. Its probabilities describe only its own reasoner: train one "
            f"on this reasoner ({self.TRAIN}), or {self.OVERRIDE} to use it anyway",
        )

    def check_live(
        self,
        templates: Mapping[str, str],
        settings: Mapping[str, Any] | None = None,
        allow_other: bool = False,
        *,
        label: str | None = None,
    ) -> None:
        """Refuse live prompt templates (name -> hash) or settings unlike the training data's.

        A template must be in the manifest with the same hash; a setting is compared only when
        the manifest recorded it. Live settings come from a config, so the override it names is
        the config's ``allow_other_reasoner: true``.
        """
        if allow_other:
            return
        diffs = []
        mine = self.manifest.templates
        for name, h in templates.items():
            if name not in mine:
                diffs.append(f"template {name} (not in the {self.KIND}'s manifest)")
            elif mine[name] != h:
                diffs.append(f"template {name}")
        for key, value in (settings or {}).items():
            trained = self.manifest.settings.get(key)
            if trained is not None and trained != value:
                diffs.append(f"{key} ({value} vs {trained} in training)")
        if diffs:
            raise ReasonerMismatch(
                self.FIELD,
                f"{label or 'this ' + self.KIND} was trained with other settings: "
                + "; ".join(diffs)
                + "; use the training settings or set allow_other_reasoner: true",
            )

    def check_names(
        self,
        named: Iterable[str],
        allow_other: bool = False,
        *,
        label: str | None = None,
        field: str | None = None,
    ) -> None:
        """Refuse model ids (sha256 or name, as samples carry them) of another model."""
        if allow_other:
            return
        other = set(named) - self.manifest.model.names()
        if other:
            raise ReasonerMismatch(
                field or self.FIELD,
                f"{label or 'this ' + self.KIND} was trained on model "
                f"{self.manifest.model.describe()}, not on {sorted(other)}; train one on that "
                f"reasoner ({self.TRAIN}), or {self.OVERRIDE}",
            )


@functools.lru_cache(maxsize=16)
def _read(cls: type[Artifact], path: str, mtime_ns: int) -> Artifact:
    text = Path(path).read_text(encoding="utf-8")
    try:
        head = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not JSON ({exc}); is it a {cls.KIND} artifact?") from exc
    found = head.get("format", cls.FORMAT) if isinstance(head, dict) else None
    if found != cls.FORMAT:
        raise InputError(
            f"{path} is a {found!r} artifact; this Ponder reads {cls.FORMAT!r} ({cls.KIND})"
        )
    art = cls.model_validate_json(text)
    art.validate_loaded(path)
    return art


__all__ = ["Artifact", "ReasonerMismatch"]
