"""Hidden states of the reasoner as a judge feature family (``ponder corpus hidden DIR``).

Use ``hidden_states(DIR)`` once a collection is collected: it embeds every sample's stored text
with the *same* model (llama.cpp's server with ``--embeddings --pooling last``: the last layer at
the last token), caches the full vectors in ``DIR/hidden-raw.jsonl`` (resumable: a rerun
continues), reduces them to ``dims`` (PCA fitted on this collection, or the projection of
``projection=TRAIN_DIR`` for a test collection) and writes the ``hidden-NNNN.npz`` sidecar that
``ponder drr train --families ...,hidden`` and ``ponder aggregate train --features ...,hidden``
read (``ponder.behaviour.hidden``). Files: ``embed`` (the endpoint, the raw cache), ``project``
(PCA / random projection, the sidecar).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ponder.behaviour.hidden import PROJECTION, read_hidden
from ponder.behaviour.records import Manifest, first_in_dataset, read_collection
from ponder.errors import InputError
from ponder.learning.hidden.embed import (
    EMBED_FLAGS,
    Embedder,
    EmbedReport,
    ServerEmbedder,
    embed_collection,
    read_raw,
)
from ponder.learning.hidden.project import (
    Method,
    Projection,
    fit_projection,
    load_projection,
    save_projection,
    write_reduced,
)


@dataclass
class HiddenReport:
    embedded: EmbedReport
    projection: Projection
    fitted: bool
    chunks: list[Path]
    samples: int
    own: bool = True  # the projection is this collection's own (not a train collection's)

    def line(self) -> str:
        p = self.projection
        how = "fitted here" if self.fitted else "reused"
        text = (
            f"{self.embedded.line()}; projection {p.method} to {p.dims} dims ({how}, "
            f"sha256 {p.sha256[:12]}); {self.samples} vectors in {len(self.chunks)} sidecar "
            "chunk(s)"
        )
        if self.stale:
            text += (
                f"\nwarning: the projection was fitted on {p.fitted_on} samples and this "
                f"collection now has {self.samples}: --refit, then re-project the test "
                "collection and retrain the judges"
            )
        return text

    @property
    def stale(self) -> bool:
        """A PCA fitted here on fewer samples than the collection now has."""
        p = self.projection
        return (
            not self.fitted and p.method == "pca" and 0 < p.fitted_on < self.samples and (self.own)
        )


def _model_file(manifest: Manifest, model_path: str | None, allow_other: bool) -> Path:
    """The model that made the collection (the default, or ``model_path``), checked."""
    from ponder.backends.local import prepare_model
    from ponder.backends.local.model import DEFAULT_MODEL, sha256_file

    if model_path is None:
        if manifest.model.sha256 not in (None, DEFAULT_MODEL.sha256) and not allow_other:
            raise InputError(
                f"the collection's reasoner is {manifest.model.describe()}, not the default "
                "model: pass --model-file PATH (the same GGUF), or --allow-other-reasoner"
            )
        return prepare_model(None)
    path = prepare_model(model_path)
    if manifest.model.sha256 and not allow_other and sha256_file(path) != manifest.model.sha256:
        raise InputError(
            f"{path} is not the collection's reasoner ({manifest.model.describe()}); the "
            "embeddings must come from the model that wrote the traces (--allow-other-reasoner)"
        )
    return path


@contextlib.contextmanager
def embedding_server(
    model: Path, runtime: str = "auto", threads: int = 1
) -> Iterator[ServerEmbedder]:
    """A llama.cpp server with last-token pooling, one slot, stopped on exit."""
    from ponder.backends.local.runtime import choose_runtimes
    from ponder.backends.local.server import LlamaServer

    server = LlamaServer(
        choose_runtimes(runtime)[0],
        model,
        n_parallel=1,
        ctx_per_slot=4096,
        threads=threads,
        extra_args=EMBED_FLAGS,
    )
    server.start()
    client = ServerEmbedder(server.url)
    try:
        yield client
    finally:
        client.close()
        server.stop()


def hidden_states(
    directory: str | Path,
    *,
    projection: str | Path | None = None,
    dims: int = 64,
    method: Method = "pca",
    refit: bool = False,
    first: int | None = None,
    model_path: str | None = None,
    runtime: str = "auto",
    threads: int = 1,
    embedder: Embedder | None = None,
    allow_other_reasoner: bool = False,
    quiet: bool = False,
) -> HiddenReport:
    """Embed, reduce and write the sidecar of one collection (see the module doc)."""
    from ponder.backends.local.progress import progress_bar

    root = Path(directory).expanduser()
    manifest, records = read_collection(root)
    records = first_in_dataset(records, first)
    if not records:
        raise InputError(f"{root} has no question records")
    model_id = manifest.model.id
    proj = _reused_projection(root, projection, refit, model_id, allow_other_reasoner)
    kept = _kept_from_sidecar(root, proj)
    done = {r.id for r in read_raw(root)}
    todo = [r for r in records if r.id not in done and r.id not in kept]
    total = sum(len(r.samples) for r in records)
    with contextlib.ExitStack() as stack:
        if todo and embedder is None:
            model = _model_file(manifest, model_path, allow_other_reasoner)
            embedder = stack.enter_context(embedding_server(model, runtime, threads))
        bar = stack.enter_context(
            progress_bar(quiet=quiet, total=total, desc="hidden states", unit="sample")
        )
        if embedder is None or not todo:  # everything is cached or kept already
            report = EmbedReport(0, 0, 0.0)
            bar.update(total)
        else:
            bar.update(sum(len(r.samples) for r in records if r.id in kept))
            report = embed_collection(
                root,
                manifest,
                [r for r in records if r.id not in kept],
                embedder,
                model=model_id,
                progress=bar.update,
            )
    wanted = {r.id for r in records}
    raw = [r for r in read_raw(root) if r.id in wanted]
    fitted = False
    if proj is None:
        import numpy as np

        proj = save_projection(
            fit_projection(np.concatenate([r.vectors for r in raw]), dims, method, model=model_id),
            root,
        )
        fitted = True
    elif projection is not None:
        save_projection(proj, root)
    in_raw = {r.id for r in raw}
    keep = {q: rows for q, rows in kept.items() if q in wanted and q not in in_raw}
    chunks = write_reduced(root, raw, [r.id for r in records], proj, keep)
    n = sum(len(r.seeds) for r in raw) + sum(len(rows) for rows in keep.values())
    return HiddenReport(report, proj, fitted, chunks, n, own=projection is None)


def _reused_projection(
    root: Path, projection: str | Path | None, refit: bool, model_id: str | None, allow: bool
) -> Projection | None:
    """The projection this run reuses (a train collection's, or DIR's own), or ``None`` to fit."""
    if projection is not None:
        proj = load_projection(Path(projection).expanduser())
        if proj.model not in (None, model_id) and not allow:
            raise InputError(
                f"the projection {projection} was fitted on another reasoner's embeddings "
                f"({proj.model}); this collection's is {model_id}"
            )
        return proj
    if (root / PROJECTION).is_file() and not refit:
        return load_projection(root / PROJECTION)
    return None


def _kept_from_sidecar(
    root: Path, proj: Projection | None
) -> dict[str, list[tuple[int | None, tuple[float, ...]]]]:
    """Questions whose reduced vectors the sidecar already holds under ``proj``: they need no
    embedding when the raw cache (not in git) is gone, e.g. a committed sidecar on a new machine.
    Nothing is kept when the projection is to be fitted or differs from the sidecar's."""
    sidecar = read_hidden(root) if proj is not None else None
    if sidecar is None or proj is None or sidecar.projection != proj.sha256:
        return {}
    kept: dict[str, list[tuple[int | None, tuple[float, ...]]]] = {}
    for (qid, seed), vec in sidecar.vectors.items():
        kept.setdefault(qid, []).append((seed, vec))
    return kept


__all__ = ["HiddenReport", "embedding_server", "hidden_states"]
