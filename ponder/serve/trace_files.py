"""The proxy's run traces on disk: one JSONL file per run in ``trace_dir``, rotated under a cap.

Use ``TraceFiles(directory, max_bytes, max_files).write(trace, secrets)`` for each chain run (the
proxy's ``ProxyState.trace_files``). Each trace is written atomically as ``<run id>.jsonl`` (keys
redacted), so the ``x-ponder-trace-id`` header names its file. Without a cap a busy proxy fills
its disk (about 2.8 kB a run: 68 MB per 24,000 requests), so the directory is rotated: once it
holds more than ``max_files`` traces or more than ``max_bytes``, the oldest are deleted (the
newest is always kept). Traces already there when the proxy starts (found on the first write,
oldest by modification time) count and go first. ``0`` turns a cap off. The index is this
process's: give each replica its own directory (a named replica writes under
``trace_dir/<replica>``). A trace that cannot be written is logged, never a failed request.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path

from ponder.orchestrator.trace import Trace
from ponder.secrets import redact

log = logging.getLogger("ponder.serve")

SUFFIX = ".jsonl"


class TraceFiles:
    def __init__(self, directory: str | None, max_bytes: int = 0, max_files: int = 0) -> None:
        self.directory = Path(directory) if directory else None
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._files: deque[tuple[Path, int]] | None = None  # oldest first
        self._bytes = 0

    def write(self, trace: Trace, secrets: list[str | None]) -> None:
        """Write ``trace`` as ``<run id>.jsonl`` (keys redacted), then rotate the oldest out."""
        if self.directory is None:
            return
        path = self.directory / f"{trace.run_id}{SUFFIX}"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            files = self._index()  # before the write: the new file is added below
            data = redact(trace.to_jsonl(), secrets).encode("utf-8")
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        except OSError as exc:
            log.warning("could not write trace %s: %s", trace.run_id, exc)
            return
        files.append((path, len(data)))
        self._bytes += len(data)
        self._rotate()

    def _index(self) -> deque[tuple[Path, int]]:
        if self._files is None:
            found = []
            assert self.directory is not None
            with os.scandir(self.directory) as it:
                for e in it:
                    if e.name.endswith(SUFFIX) and e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        found.append((st.st_mtime, Path(e.path), st.st_size))
            found.sort(key=lambda f: f[0])
            self._files = deque((p, size) for _, p, size in found)
            self._bytes = sum(size for _, _, size in found)
        return self._files

    def _rotate(self) -> None:
        files = self._index()
        removed = 0
        while len(files) > 1 and (
            (self.max_files and len(files) > self.max_files)
            or (self.max_bytes and self._bytes > self.max_bytes)
        ):
            path, size = files.popleft()
            self._bytes -= size
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as exc:
                log.warning("could not remove old trace %s: %s", path.name, exc)
            removed += 1
        if removed:
            log.debug("ponder serve: rotated %d old trace(s) out of %s", removed, self.directory)
