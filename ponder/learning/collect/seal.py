"""Seal a growing behaviour collection into gzipped chunks that never change once written.

Use it to keep a corpus in git (or any store that hates files rewritten in place) while the
collector still appends to it: ``seal(src, into=dest, chunk=25)`` copies the manifest and writes
each full run of ``chunk`` records that ``dest`` does not hold yet as
``records-NNNN.jsonl.gz`` (the lines byte for byte, gzip without a timestamp, so the same
records always give the same file). Sealing in place (``into`` omitted) also moves the sealed
lines out of ``records.jsonl``; do that only while no collector writes to ``src``. Sealing into
another directory only reads ``src``, so it is safe while the collection runs.
``read_collection`` and a resumed ``ponder collect`` read sealed chunks and ``records.jsonl``
together, so a sealed directory is an ordinary collection.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from ponder.behaviour.records import (
    MANIFEST,
    RECORDS,
    chunk_lines,
    read_manifest,
    record_lines,
    sealed_chunks,
)
from ponder.errors import InputError
from ponder.learning.collect.collector import check_resumable


@dataclass(frozen=True)
class SealReport:
    """What one ``seal`` did: chunks written, records in them, records left unsealed."""

    into: Path
    chunks: list[Path]
    sealed: int
    left: int

    def line(self) -> str:
        names = ", ".join(p.name for p in self.chunks) or "no new chunk"
        return (
            f"sealed {self.sealed} record(s) into {self.into} ({names}); "
            f"{self.left} record(s) wait for a full chunk"
        )


def _gzip_bytes(lines: list[str]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as f:
        f.write("".join(ln + "\n" for ln in lines).encode("utf-8"))
    return buf.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def seal(src: str | Path, into: str | Path | None = None, chunk: int = 25) -> SealReport:
    """Write ``src``'s records that ``into`` lacks as full chunks of ``chunk`` (see module doc)."""
    if chunk < 1:
        raise InputError(f"--chunk must be at least 1 (got {chunk})")
    src = Path(src).expanduser()
    dest = Path(into).expanduser() if into is not None else src
    manifest = read_manifest(src)
    dest.mkdir(parents=True, exist_ok=True)
    if (dest / MANIFEST).is_file():
        if dest != src:
            check_resumable(read_manifest(dest), manifest)
    else:
        shutil.copyfile(src / MANIFEST, dest / MANIFEST)
    done = {str(json.loads(ln)["id"]) for c in sealed_chunks(dest) for ln in chunk_lines(c)}
    new = [ln for ln in record_lines(src) if str(json.loads(ln)["id"]) not in done]
    first = len(sealed_chunks(dest))
    written: list[Path] = []
    for i in range(len(new) // chunk):
        path = dest / f"records-{first + i:04d}.jsonl.gz"
        _write_atomic(path, _gzip_bytes(new[i * chunk : (i + 1) * chunk]))
        written.append(path)
    sealed = len(written) * chunk
    if dest == src and sealed:  # move the sealed lines out of the live file
        rest = new[sealed:]
        _write_atomic(src / RECORDS, "".join(ln + "\n" for ln in rest).encode("utf-8"))
    return SealReport(into=dest, chunks=written, sealed=sealed, left=len(new) - sealed)


__all__ = ["SealReport", "seal"]
