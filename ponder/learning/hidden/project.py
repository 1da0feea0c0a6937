"""Reduce raw embeddings to a small probe input, and write the collection's sidecar.

Use ``fit_projection(raw, dims, method)`` on a *train* collection's embeddings (PCA: the top
``dims`` principal directions of the L2-normalized vectors; ``random``: a seeded Gaussian
projection that needs no data), ``save_projection``/``load_projection`` to keep it beside the
collection (``hidden-projection.npz``), and ``write_reduced(directory, ...)`` to write the
``hidden-NNNN.npz`` sidecar (``ponder.behaviour.hidden``). A test collection is reduced with its
train collection's projection, so both live in one space and nothing is fitted on test data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ponder.behaviour.hidden import PROJECTION, write_npz, write_sidecar
from ponder.behaviour.records import file_sha256
from ponder.errors import InputError
from ponder.learning.hidden.embed import RawRow

Method = Literal["pca", "random"]


@dataclass
class Projection:
    mean: Any  # (D,)
    components: Any  # (dims, D)
    method: str
    model: str | None
    sha256: str = ""
    fitted_on: int = 0  # samples the projection was fitted on (0: random, needs none)

    @property
    def dims(self) -> int:
        return int(self.components.shape[0])

    def apply(self, vectors: Any) -> Any:
        """Rows of raw embeddings -> rows of ``dims`` probe inputs."""
        import numpy as np

        x = np.asarray(vectors, dtype=float)
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return (x - self.mean) @ self.components.T


def fit_projection(
    raw: Any, dims: int, method: Method = "pca", seed: int = 0, model: str | None = None
) -> Projection:
    import numpy as np

    x = np.asarray(raw, dtype=float)
    if x.ndim != 2 or not len(x):
        raise InputError("no embeddings to fit a projection on; run the embedding step first")
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    d = x.shape[1]
    if method == "random":
        rng = np.random.default_rng(seed)
        comp = rng.standard_normal((dims, d)) / np.sqrt(dims)
        return Projection(np.zeros(d), comp, "random", model)
    if dims > min(x.shape):
        raise InputError(
            f"PCA to {dims} dimensions needs at least {dims} samples (have {x.shape[0]}); "
            "collect more, pass --dims, or --method random"
        )
    from sklearn.decomposition import PCA

    pca = PCA(n_components=dims, svd_solver="full").fit(x)
    # whiten: unit variance per direction
    scale = pca.singular_values_ / np.sqrt(max(1, len(x) - 1))
    comp = pca.components_ / np.maximum(scale, 1e-9)[:, None]
    return Projection(pca.mean_, comp, "pca", model, fitted_on=len(x))


def save_projection(p: Projection, directory: Path) -> Projection:
    import numpy as np

    meta = json.dumps(
        {"method": p.method, "model": p.model, "dims": p.dims, "fitted_on": p.fitted_on},
        sort_keys=True,
    )
    path = write_npz(
        directory / PROJECTION,
        {
            "mean": np.asarray(p.mean, dtype=np.float32),
            "components": np.asarray(p.components, dtype=np.float32),
            "meta": np.asarray(meta),
        },
    )
    p.sha256 = file_sha256(path)
    return p


def load_projection(path: Path) -> Projection:
    import numpy as np

    if path.is_dir():
        path = path / PROJECTION
    if not path.is_file():
        raise InputError(f"no hidden-state projection at {path} (ponder corpus hidden TRAIN_DIR)")
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        mean, comp = z["mean"].astype(float), z["components"].astype(float)
    return Projection(
        mean,
        comp,
        meta["method"],
        meta.get("model"),
        file_sha256(path),
        int(meta.get("fitted_on", 0)),
    )


def write_reduced(
    directory: Path,
    rows: Sequence[RawRow],
    order: Sequence[str],
    p: Projection,
    kept: Mapping[str, Sequence[tuple[int | None, Sequence[float]]]] | None = None,
) -> list[Path]:
    """Project every raw row and write the sidecar chunks (questions in ``order``), with
    ``kept``: questions already reduced under ``p`` (from the sidecar), written as they were."""
    out: list[tuple[str, int | None, Sequence[float]]] = []
    for qid, kept_rows in (kept or {}).items():
        out.extend((qid, seed, vec) for seed, vec in kept_rows)
    for r in rows:
        h = p.apply(r.vectors)
        out.extend((r.id, seed, vec) for seed, vec in zip(r.seeds, h, strict=True))
    return write_sidecar(directory, out, order, projection=p.sha256, dims=p.dims, model=p.model)
