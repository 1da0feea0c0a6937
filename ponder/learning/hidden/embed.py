"""The reasoner's last-token embedding of every stored sample, from an embeddings endpoint.

Use ``embed_collection(directory, embedder)`` after ``ponder collect``: for each question not yet
in ``DIR/hidden-raw.jsonl`` it embeds each sample's *whole* text as the reasoner saw it (the
chat prompt, rendered by the server's own template, then the sample's generated text) and
appends one line per question (fsynced; resumable). ``Embedder`` is anything with
``prompt(messages)`` and ``embed(text)``; ``ServerEmbedder`` talks to llama.cpp's server started
by ``embedding_server`` with ``--embeddings --pooling last`` (the last layer's state at the last
token: all llama.cpp gives), through its OpenAI-compatible ``/v1/embeddings``.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ponder.behaviour.hidden import RAW
from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.errors import BackendError, InputError
from ponder.jsonl import append_line, cut_torn_tail, read_json_lines
from ponder.protocol.actions import Task
from ponder.protocol.requests import Message
from ponder.strategies.cot import cot_messages

EMBED_FLAGS = ("--embeddings", "--pooling", "last", "-b", "4096", "-ub", "4096")
"""llama-server flags of an embedding server: last-token pooling, and a batch that holds a whole
trace (an embedding must fit one micro-batch)."""


class Embedder(Protocol):
    def prompt(self, messages: Sequence[Message]) -> str: ...

    def embed(self, text: str) -> list[float]: ...


class ServerEmbedder:
    """llama.cpp's server (``/apply-template``, ``/v1/embeddings``) at ``url``."""

    def __init__(self, url: str, timeout_s: float = 600.0, transport: Any = None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self._client = httpx.Client(timeout=timeout_s, transport=transport)

    def prompt(self, messages: Sequence[Message]) -> str:
        r = self._client.post(f"{self.url}/apply-template", json={"messages": list(messages)})
        r.raise_for_status()
        return str(r.json()["prompt"])

    def embed(self, text: str) -> list[float]:
        import httpx

        try:
            r = self._client.post(f"{self.url}/v1/embeddings", json={"input": text})
        except httpx.HTTPError as e:  # a hung, killed or paused server: say so, keep the cache
            raise BackendError(
                f"the embeddings endpoint {self.url}/v1/embeddings failed: "
                f"{type(e).__name__}: {e}; the questions embedded so far are kept: "
                "rerun the same command to continue",
                url=f"{self.url}/v1/embeddings",
            ) from e
        if r.status_code != 200:
            raise InputError(
                f"the embeddings endpoint {self.url}/v1/embeddings answered {r.status_code}: "
                f"{r.text[:300]} (was the server started with {' '.join(EMBED_FLAGS)}?)"
            )
        return [float(v) for v in r.json()["data"][0]["embedding"]]

    def close(self) -> None:
        self._client.close()


def sample_messages(manifest: Manifest, question: str) -> tuple[Message, ...]:
    """The chat messages the collector sent for ``question`` (its templates)."""
    s = manifest.settings
    return cot_messages(
        Task(question=question),
        str(s.get("system_template", "cot_system")),
        str(s.get("user_template", "cot_user")),
    )


def encode(vectors: Sequence[Sequence[float]]) -> str:
    """Vectors as base64 float16 (the raw cache's compact form)."""
    import numpy as np

    return base64.b64encode(np.asarray(vectors, dtype="<f2").tobytes()).decode()


def decode(data: str, rows: int) -> Any:
    import numpy as np

    return np.frombuffer(base64.b64decode(data), dtype="<f2").reshape(rows, -1).astype(float)


@dataclass
class RawRow:
    id: str
    seeds: list[int | None]
    vectors: Any  # numpy array, samples x embedding dims


def read_raw(directory: Path) -> list[RawRow]:
    path = directory / RAW
    if not path.is_file():
        return []
    return [
        RawRow(str(r["id"]), list(r["seeds"]), decode(r["emb"], len(r["seeds"])))
        for r in read_json_lines(path)
    ]


@dataclass
class EmbedReport:
    questions: int
    samples: int
    tokens_s: float  # seconds spent embedding (wall)

    def line(self) -> str:
        per = self.tokens_s / self.samples if self.samples else 0.0
        return (
            f"embedded {self.samples} samples of {self.questions} new question(s) in "
            f"{self.tokens_s:.1f} s ({per:.2f} s a sample)"
        )


def embed_collection(
    directory: Path,
    manifest: Manifest,
    records: Sequence[QuestionRecord],
    embedder: Embedder,
    *,
    model: str | None,
    progress: Callable[[int], object] | None = None,
) -> EmbedReport:
    """Embed every sample of ``records`` not yet in the raw cache (see the module doc)."""
    path = directory / RAW
    cut_torn_tail(path)
    done = {r.id for r in read_raw(directory)}
    start = time.monotonic()
    questions = samples = 0
    for rec in records:
        if rec.id in done:
            if progress:
                progress(len(rec.samples))
            continue
        head = embedder.prompt(sample_messages(manifest, rec.question))
        vectors = []
        for s in rec.samples:
            vectors.append(embedder.embed(head + s.text))
            if progress:
                progress(1)
        line = {
            "id": rec.id,
            "seeds": [s.seed for s in rec.samples],
            "model": model,
            "dim": len(vectors[0]) if vectors else 0,
            "emb": encode(vectors),
        }
        append_line(path, json.dumps(line))
        questions += 1
        samples += len(vectors)
    return EmbedReport(questions, samples, time.monotonic() - start)
