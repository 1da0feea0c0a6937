"""Where the embedded local model's build and model files are cached, outside any repository.

``$PONDER_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/ponder``, else ``~/.cache/ponder``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def cache_dir() -> Path:
    root = os.environ.get("PONDER_CACHE_DIR")
    if root:
        path = Path(root)
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        path = (Path(xdg) if xdg else Path.home() / ".cache") / "ponder"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive lock across processes, so two runs never build or assemble the same thing."""
    lock_path = cache_dir() / f".{name}.lock"
    with lock_path.open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
