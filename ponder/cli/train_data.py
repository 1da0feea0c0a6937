"""The train collections a training command reads: one or more directories pooled into one set of
questions (``ponder drr train --data A --data B``, ``ponder aggregate train --collection A
--collection B``), with their hidden-state sidecars when the features need them.

Use it when a corpus was grown in a second directory with other settings (``ponder collect
--skip``): the reasoner and the settings a judge's features depend on must match
(``pool_collections`` refuses them otherwise), and each question is read once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ponder.behaviour.hidden import HiddenStates, read_hidden
from ponder.behaviour.records import Manifest, QuestionRecord, read_collection
from ponder.cli.common import say
from ponder.errors import InputError
from ponder.learning.drr.folds import pool_collections


def read_train(
    dirs: Sequence[str | Path], *, hidden: bool = False
) -> tuple[Manifest, list[QuestionRecord], HiddenStates | None, str]:
    """The pooled manifest (the first's), questions, hidden states (``hidden``: all sidecars
    merged; ``None`` where no directory has one) and a one-line description of the sources."""
    paths = [Path(d).expanduser() for d in dirs]
    manifest, records, dropped = pool_collections([read_collection(p) for p in paths], say)
    if not records:
        raise InputError(f"{', '.join(map(str, paths))} hold(s) no question records yet")
    states = merge_hidden([read_hidden(p) for p in paths], paths) if hidden else None
    what = ", ".join(map(str, paths)) + (
        f" ({dropped} repeated questions read once)" if dropped else ""
    )
    return manifest, records, states, what


def merge_hidden(
    parts: Sequence[HiddenStates | None], where: Sequence[Path]
) -> HiddenStates | None:
    """One set of vectors from each directory's sidecar; they must share one projection (project
    the second with the first's: ``ponder corpus hidden B --projection A``)."""
    present = [(h, p) for h, p in zip(parts, where, strict=True) if h is not None]
    if not present:
        return None
    first, first_dir = present[0]
    out = HiddenStates(first.projection, first.dims, first.model)
    for h, p in present:
        if h.projection != first.projection:
            raise InputError(
                f"{p}: hidden states projected with {h.projection[:12]}, {first_dir}'s with "
                f"{first.projection[:12]}; rerun "
                f"`ponder corpus hidden {p} --projection {first_dir}`"
            )
        for key, vec in h.vectors.items():
            out.vectors.setdefault(key, vec)
    return out
