"""Drive ``BehaviourCollector`` over a labelled dataset into a resumable collection directory.

Use ``collect(...)`` from Python or ``ponder collect`` from the shell. Questions run a few at a
time through one orchestrator; each finished question is graded and appended to
``records.jsonl`` as one line (flushed and fsynced), so a crash or Ctrl-C loses nothing written
and a rerun with the same settings continues where it stopped. A rerun with *different*
settings (or another reasoner) into the same directory is refused, naming what differs.
A question whose trace failed (after the orchestrator's retries) is not written but counted as
failed, so a rerun redoes it; a failure no rerun can fix (a missing backend capability, a
rejected key, a config error) stops the whole collection at the first question, writing nothing.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ponder.behaviour.datasets import Item
from ponder.behaviour.records import (
    DEFAULT_REASONER,
    MANIFEST,
    RECORDS,
    DatasetInfo,
    Manifest,
    ModelInfo,
    ProbeRecord,
    QuestionRecord,
    SampleRecord,
    file_sha256,
    sealed_chunks,
)
from ponder.config import BackendConfig, LocalBackendConfig, OpenAIBackendConfig
from ponder.errors import AuthenticationFailed, CapabilityMissing, ConfigError, PonderError
from ponder.evaluation.driver import (
    Bar,
    DriveStats,
    Failed,
    ItemWork,
    ManifestFile,
    Output,
    Remote,
    Write,
    drive,
    run_with,
)
from ponder.grading import is_equivalent
from ponder.learning.collect.strategy import BehaviourCollector
from ponder.orchestrator.engine import Orchestrator
from ponder.prompts.loader import template_hash
from ponder.protocol.actions import Outcome, Task
from ponder.secrets import redact
from ponder.strategies.probed_trace import TraceLog
from ponder.strategies.thinking_trace import ThinkingLog


def template_hashes(strategy: BehaviourCollector) -> dict[str, str]:
    return {name: template_hash(name) for name in strategy.template_names()}


def build_manifest(
    strategy: BehaviourCollector,
    model: ModelInfo,
    dataset_path: str | Path,
    rows: int,
    first: int | None,
    *,
    skip: int = 0,
) -> Manifest:
    settings = strategy.model_dump(exclude={"seed", "thinking"})
    settings["probe_stop"] = list(strategy.probe_stop)
    if strategy.thinking is not None:  # absent otherwise: plain manifests stay as they were
        settings["thinking"] = strategy.thinking.model_dump(mode="json")
    return Manifest(
        model=model,
        templates=template_hashes(strategy),
        settings=settings,
        seed=strategy.seed,
        dataset=DatasetInfo(
            path=str(dataset_path),
            sha256=file_sha256(dataset_path),
            rows=rows,
            first=first,
            skip=skip,
        ),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )


def backend_model_info(
    backend: BackendConfig, model_file: str | Path | None = None, *, where: str = "backend"
) -> ModelInfo:
    """The model a backend config serves, for a manifest; nothing is started or downloaded.

    ``model_file`` (``--model-file``) wins: that GGUF, hashed. A local backend: its named model
    (built in or registered by ``ponder ssa export``: name, file and sha256 as the registry
    records them, the file not re-hashed), its ``model_path`` (the given sha256, else hashed) or
    the verified default. An OpenAI-compatible endpoint: the model id it is asked for (as the
    backend resolves it: the config, else ``$PONDER_MODEL`` / ``$OPENAI_MODEL``) and, in
    ``file``, its base URL without credentials (``public_url``). Others: their ``model`` or kind.
    An unknown model name is a ``ConfigError`` naming ``{where}.model``."""
    from ponder.backends.local.registry import RegisteredModel, resolve_model

    if model_file:
        path = Path(model_file).expanduser()
        return ModelInfo(name=path.stem, file=str(path), sha256=file_sha256(path))
    if isinstance(backend, LocalBackendConfig):
        if backend.model is not None:
            found = resolve_model(backend.model, field_name=f"{where}.model")
            if isinstance(found, RegisteredModel):
                return ModelInfo(name=found.name, file=found.file, sha256=found.sha256)
            return ModelInfo(name=found.name, file=found.file_name, sha256=found.sha256)
        if backend.model_path is None:
            return DEFAULT_REASONER.model_copy()
        path = Path(backend.model_path).expanduser()
        return ModelInfo(name=path.stem, file=str(path), sha256=backend.sha256 or file_sha256(path))
    if isinstance(backend, OpenAIBackendConfig):
        model = backend.model or os.environ.get("PONDER_MODEL") or os.environ.get("OPENAI_MODEL")
        url = backend.base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        key = os.environ.get(backend.api_key_env)
        return ModelInfo(name=model or backend.kind, file=public_url(url.rstrip("/"), [key]))
    return ModelInfo(name=str(getattr(backend, "model", None) or backend.kind))


_SECRET_WORDS = ("key", "token", "secret", "password", "passwd", "pwd", "auth", "sig", "credential")


def public_url(url: str, secrets: Iterable[str | None] = ()) -> str:
    """``url`` fit for a manifest: no user or password, no fragment, no query parameter whose
    name looks secret (``api_key``, ``token``, ``sig``, ...), and any of ``secrets`` redacted."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not any(w in k.lower() for w in _SECRET_WORDS)
    ]
    path = parts.path.rstrip("/")
    return redact(urlunsplit((parts.scheme, netloc, path, urlencode(query), "")), secrets)


def check_resumable(old: Manifest, new: Manifest) -> None:
    """Refuse to append to a collection made with other settings, naming what differs."""
    diffs: list[str] = []
    if old.model.sha256 != new.model.sha256 or old.model.name != new.model.name:
        diffs.append(f"reasoner ({_who(old.model)} vs {_who(new.model)})")
    if old.templates != new.templates:
        diffs.append("prompt templates")
    for key in sorted(set(old.settings) | set(new.settings)):
        if old.settings.get(key) != new.settings.get(key):
            diffs.append(f"{key} ({old.settings.get(key)!r} vs {new.settings.get(key)!r})")
    if old.seed != new.seed:
        diffs.append(f"seed ({old.seed} vs {new.seed})")
    if old.dataset.sha256 != new.dataset.sha256:
        diffs.append(f"dataset ({old.dataset.path} vs {new.dataset.path})")
    if diffs:
        raise ConfigError(
            "out",
            "this collection was made with other settings: "
            + "; ".join(diffs)
            + " (use a new --out directory, or the original settings to resume)",
        )


def _who(m: ModelInfo) -> str:
    return f"{m.name} sha256 {m.sha256}" if m.sha256 else m.name


def _sample(log: TraceLog, answer: str | None, gold: str) -> SampleRecord:
    th = log if isinstance(log, ThinkingLog) else None  # probes were made inside the thinking
    return SampleRecord(
        seed=log.seed,
        text=log.text,
        answer=answer,
        correct=is_equivalent(answer, gold),
        finish_reason=log.finish_reason,
        tokens=log.tokens,
        lp=log.lp,
        conf=log.conf,
        probes=[
            ProbeRecord(
                at=p["at"],
                answer=p["answer"],
                correct=is_equivalent(p["answer"], gold),
                text=p["text"],
                tokens=p["tokens"],
                thinking_tokens=p["at"] if th is not None else None,
            )
            for p in log.probes
        ],
        critique_p_yes=log.critique_p_yes,
        error=log.error,
        usage=log.usage,
        thinking=th.thinking if th is not None else None,
        thinking_tokens=th.thinking_tokens if th is not None else None,
        thinking_cut=th.thinking_cut if th is not None else None,
    )


def _record_of(item: Item, outcome: Outcome, usage: dict[str, Any], wall: float) -> QuestionRecord:
    samples = [_sample(s.data["trace"], s.answer, item.gold) for s in outcome.samples]
    greedy = outcome.data.get("greedy")
    return QuestionRecord(
        id=item.id,
        question=item.question,
        gold=item.gold,
        samples=samples,
        greedy=_sample(greedy.data["trace"], greedy.answer, item.gold) if greedy else None,
        usage=usage,
        wall_s=round(wall, 2),
    )


@dataclass(kw_only=True)
class CollectSummary(DriveStats):
    """What a ``collect`` call did (this call only, plus the collection's total size): the
    driver's counts, and the collection directory ``out``."""

    out: Path

    @property
    def collected(self) -> int:
        """Questions written by this call."""
        return self.written

    def line(self) -> str:
        return (
            f"collected {self.collected} question(s) ({self.done_before} before, "
            f"{len(self.failed)} failed) into {self.out}; {self.completion_tokens} generated "
            f"tokens at {self.tok_s:.1f} tok/s; prompt cache hit rate {self.cache_hit_rate:.0%}"
        )


def collection_output(out: str | Path, manifest: Manifest) -> Output:
    """The collection directory as a resumable output: ``records.jsonl`` and ``manifest.json``
    (a resume with other settings or another reasoner is refused by ``check_resumable``)."""
    out = Path(out)
    return Output(
        records=out / RECORDS,
        sealed=tuple(sealed_chunks(out)),
        manifest=ManifestFile(
            path=out / MANIFEST,
            text=manifest.model_dump_json(indent=2),
            check=lambda text: check_resumable(Manifest.model_validate_json(text), manifest),
        ),
    )


@dataclass(frozen=True)
class CollectItem:
    """Collect one question with ``strategy``: its record line, or ``Failed`` (a rerun redoes
    it); a failure no rerun can fix is raised. Picklable: ``ponder.scale`` runs it on workers."""

    strategy: BehaviourCollector

    async def __call__(self, orchestrator: Orchestrator, item: Item) -> Write | Failed:
        t = time.perf_counter()
        try:
            result = await orchestrator.run(self.strategy, Task(item.question))
        except PonderError as exc:
            return Failed.of(exc)
        problem = _sample_failure(result.outcome)
        if problem is not None:  # not written: a rerun redoes this question
            return Failed.of(problem)
        u = result.usage
        rec = _record_of(item, result.outcome, u.to_dict(), time.perf_counter() - t)
        return Write(rec.model_dump_json(exclude_none=True), u)


async def collect(
    items: Sequence[Item],
    out: str | Path,
    orchestrator: Orchestrator | None,
    strategy: BehaviourCollector,
    manifest: Manifest,
    *,
    questions_at_once: int = 2,
    progress: bool = True,
    elsewhere: Callable[[ItemWork[Item]], Remote[Item]] | None = None,
) -> CollectSummary:
    """Collect behaviour on ``items`` into ``out`` (resuming what is there); see the module doc.
    ``elsewhere`` runs the questions on other machines (``ponder.scale``; then ``orchestrator``
    is not used and may be None)."""
    out = Path(out)
    work = CollectItem(strategy)

    def postfix(s: DriveStats) -> dict[str, str]:
        return {"tok_s": f"{s.tok_s:.0f}", "cache": f"{s.cache_hit_rate:.0%}"}

    stats = await drive(
        items,
        collection_output(out, manifest),
        run_with(work, orchestrator, elsewhere),
        id_of=lambda it: it.id,
        at_once=questions_at_once,
        bar=Bar("collect", "q", postfix, progress),
    )
    return CollectSummary(out=out, **vars(stats))


FATAL = (CapabilityMissing, AuthenticationFailed, ConfigError)
"""Sample failures that every question would meet the same way: the collection stops at once."""


def _sample_failure(outcome: Outcome) -> BaseException | None:
    """The first failure among a question's traces (greedy included), or None if all finished.

    A question with a failed trace is not written (a collection with holes would bias what is
    trained on it); a failure that no rerun can fix (``FATAL``) is raised, stopping the run.
    """
    greedy = outcome.data.get("greedy")
    traces = [*outcome.samples, *([greedy] if greedy is not None else [])]
    first: BaseException | None = None
    for s in traces:
        exc = s.data.get("exception")
        log = s.data.get("trace")
        if exc is None and log is not None and log.error:
            exc = PonderError(log.error)
        if isinstance(exc, FATAL):
            raise exc
        first = first or exc
    return first
