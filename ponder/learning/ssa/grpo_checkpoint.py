"""Checkpoints of a GRPO run, so a long CPU run survives an interruption and resumes exactly.

``grpo_ssa`` writes one every ``save_every`` steps into ``<out>/checkpoint/state.pt`` (atomically:
a temporary file, then a rename) and removes it when the run finishes. It holds what the next
step depends on: the adapter's trainable weights, the optimizer state, the prompt order (the
shuffling RNG and the queue), the steps logged so far and the rewards seen. Sampling is seeded
per step, so a resumed run takes the same steps as an uninterrupted one.

A checkpoint resumes only the run that wrote it: the same data file (by sha256), base, initial
adapter and settings. ``steps`` may grow (train further) and ``threads`` and ``device`` may
change; anything else is a ``ConfigError`` on ``resume`` naming the settings that differ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.errors import ConfigError

CHECKPOINT_DIR = "checkpoint"
STATE = "state.pt"
FORMAT = "ponder.ssa-grpo-checkpoint/1"
_FREE = ("steps", "threads", "device")
"""Settings a resumed run may change."""


@dataclass
class RunState:
    """Where a GRPO run stands after ``step`` optimizer steps."""

    step: int = 0
    rng_state: Any = None
    queue: list[int] = field(default_factory=list)
    step_log: list[dict[str, Any]] = field(default_factory=list)
    rewards_seen: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0


def checkpoint_path(out: Path) -> Path:
    return out / CHECKPOINT_DIR / STATE


def identity(settings: dict[str, Any], data_sha256: str, base: Path, init: Path | None) -> dict:
    """What must match for a checkpoint to resume a run."""
    return {
        "settings": {k: v for k, v in settings.items() if k not in _FREE},
        "data_sha256": data_sha256,
        "base": str(base.resolve()),
        "init_adapter": str(init.resolve()) if init else None,
    }


def save_checkpoint(
    torch: Any, out: Path, ident: dict[str, Any], model: Any, optim: Any, state: RunState
) -> None:
    """Write ``state`` with the model's trainable weights and the optimizer state."""
    path = checkpoint_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    params = {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
    blob = {
        "format": FORMAT,
        "identity": ident,
        "params": params,
        "optim": optim.state_dict(),
        "state": state.__dict__,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    torch: Any, out: Path, ident: dict[str, Any], model: Any, optim: Any
) -> RunState:
    """Restore the model's trainable weights and the optimizer from ``out``'s checkpoint and
    return the run state; ``ConfigError("resume", ...)`` if it belongs to another run."""
    path = checkpoint_path(out)
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob.get("format") != FORMAT:
        raise ConfigError("resume", f"{path} is not a GRPO checkpoint ({blob.get('format')!r})")
    saved = blob["identity"]
    if saved != ident:
        diff = sorted(
            [k for k in ident["settings"] if saved["settings"].get(k) != ident["settings"][k]]
            + [k for k in ("data_sha256", "base", "init_adapter") if saved.get(k) != ident[k]]
        )
        raise ConfigError(
            "resume",
            f"{path} was written by a run with other inputs or settings ({', '.join(diff)}); "
            "resume with the same ones, or --force to start over",
        )
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in blob["params"].items():
            params[name].copy_(value.to(params[name].device))
    optim.load_state_dict(blob["optim"])
    return RunState(**blob["state"])


def remove_checkpoint(out: Path) -> None:
    path = checkpoint_path(out)
    path.unlink(missing_ok=True)
    path.with_suffix(".tmp").unlink(missing_ok=True)
    if path.parent.is_dir() and not any(path.parent.iterdir()):
        path.parent.rmdir()
