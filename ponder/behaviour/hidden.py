"""Hidden-state sidecars of a behaviour collection: the reasoner's reduced last-token embedding.

Use ``read_hidden(DIR)`` to get the vectors ``ponder corpus hidden DIR`` stored beside a
collection (``None`` when it has none), and ``HiddenStates.vector(question_id, seed)`` for one
sample's. The files, beside ``manifest.json``:

- ``hidden-NNNN.npz``: the sidecar chunks, 25 questions each in collection order: ``ids`` and
  ``seeds`` (one row per sample), ``h`` (float16, rows x dims: the sample's last-token embedding
  projected to ``dims``), ``meta`` (JSON: ``projection`` sha256, ``dims``, ``model`` sha256).
  Written byte-for-byte deterministically (fixed zip timestamps), so an unchanged chunk never
  changes in git.
- ``hidden-projection.npz``: the projection (``mean``, ``components``; PCA fitted on a train
  collection, or a seeded random projection); a test collection reuses its train collection's,
  and a judge trained on one projection refuses vectors of another.
- ``hidden-raw.jsonl``: the full embeddings, a resumable cache (not for git).

numpy is imported only when a sidecar is read or written.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.errors import InputError

HIDDEN_GLOB = "hidden-[0-9][0-9][0-9][0-9].npz"
PROJECTION = "hidden-projection.npz"
RAW = "hidden-raw.jsonl"
CHUNK = 25
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: Mapping[str, Any]) -> Path:
    """``numpy.savez_compressed`` with fixed timestamps: the same arrays give the same bytes."""
    import numpy as np

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            arr = io.BytesIO()
            np.lib.format.write_array(arr, np.asarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, arr.getvalue())
    data = buf.getvalue()
    if not path.is_file() or path.read_bytes() != data:
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path


@dataclass
class HiddenStates:
    """The stored vectors of one collection, by (question id, seed)."""

    projection: str
    dims: int
    model: str | None
    vectors: dict[tuple[str, int | None], tuple[float, ...]] = field(default_factory=dict)

    def vector(self, question_id: str, seed: int | None) -> tuple[float, ...] | None:
        return self.vectors.get((str(question_id), seed))

    def __len__(self) -> int:
        return len(self.vectors)


def sidecar_chunks(directory: str | Path) -> list[Path]:
    return sorted(Path(directory).expanduser().glob(HIDDEN_GLOB))


def read_hidden(directory: str | Path) -> HiddenStates | None:
    """The sidecar vectors beside a collection, or ``None`` when it has none."""
    chunks = sidecar_chunks(directory)
    if not chunks:
        return None
    import numpy as np

    out: HiddenStates | None = None
    for path in chunks:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            ids, seeds, h = z["ids"], z["seeds"], z["h"].astype(float)
        if out is None:
            out = HiddenStates(meta["projection"], int(meta["dims"]), meta.get("model"))
        elif meta["projection"] != out.projection:
            raise InputError(
                f"{path}: projected with {meta['projection'][:12]}, the other chunks with "
                f"{out.projection[:12]}; rerun `ponder corpus hidden {directory}`"
            )
        for qid, seed, row in zip(ids, seeds, h, strict=True):
            key = (str(qid), None if int(seed) < 0 else int(seed))
            out.vectors[key] = tuple(float(v) for v in row)
    return out


def write_sidecar(
    directory: Path,
    rows: Iterable[tuple[str, int | None, Sequence[float]]],
    question_order: Sequence[str],
    *,
    projection: str,
    dims: int,
    model: str | None,
    chunk: int = CHUNK,
) -> list[Path]:
    """Write ``hidden-NNNN.npz`` chunks of ``chunk`` questions (in ``question_order``); rows are
    (question id, seed, vector). Returns the chunk paths; stale chunks beyond them are removed."""
    import numpy as np

    by_q: dict[str, list[tuple[int | None, Sequence[float]]]] = {}
    for qid, seed, vec in rows:
        by_q.setdefault(str(qid), []).append((seed, vec))
    order = [q for q in question_order if q in by_q]
    meta = json.dumps({"projection": projection, "dims": dims, "model": model}, sort_keys=True)
    paths = []
    for c in range(0, len(order), chunk):
        ids: list[str] = []
        seeds: list[int] = []
        vecs: list[Sequence[float]] = []
        for q in order[c : c + chunk]:
            for seed, vec in by_q[q]:
                ids.append(q)
                seeds.append(-1 if seed is None else int(seed))
                vecs.append(vec)
        arrays = {
            "ids": np.asarray(ids, dtype=str),
            "seeds": np.asarray(seeds, dtype=np.int64),
            "h": np.asarray(vecs, dtype=np.float16).reshape(len(vecs), dims),
            "meta": np.asarray(meta),
        }
        paths.append(write_npz(directory / f"hidden-{c // chunk:04d}.npz", arrays))
    for stale in sidecar_chunks(directory)[len(paths) :]:
        stale.unlink()
    return paths
