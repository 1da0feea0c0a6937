"""``ponder merge OUT SHARD...``: put the outputs of ``--shard i/n`` runs back together.

Use it after an array job (Slurm, Kubernetes) whose tasks each ran one shard. Every shard carries
a ``shard.json`` (``ponder.scale.shard``); merging refuses shards of different kinds, counts or
manifests (the model, settings, data: only ``created`` may differ), and a shard given twice. The
merged output is the ordinary output of the command, as one unsharded run would have written it:

- ``collect``: ``OUT/manifest.json`` and ``OUT/records.jsonl`` (sealed chunks read too);
- ``ssa rft``: the targets file ``OUT`` and ``OUT.manifest.json``;
- ``eval``: ``OUT/<config>.jsonl`` for each config, and the summary (``summary.json``,
  ``summary.md``) computed over all the shards' records.

Each id is kept once (the first shard that has it). Missing shards are reported, not refused:
the merged output is then partial and says so (``merged.json``); merge again when they are done.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.behaviour.records import MANIFEST, RECORDS, record_lines
from ponder.errors import ConfigError, InputError
from ponder.evaluation.summary import add_paired, format_table, summarize
from ponder.jsonl import read_text
from ponder.scale.shard import ShardFile, shard_file_path, without_created


@dataclass(frozen=True)
class MergeReport:
    """What ``merge`` wrote: the kind of job, records kept, duplicates dropped, shards missing."""

    out: Path
    kind: str
    records: int
    duplicates: int
    missing: list[int]
    count: int

    def line(self) -> str:
        gap = f"; MISSING shards {', '.join(map(str, self.missing))}" if self.missing else ""
        return (
            f"merged {self.count - len(self.missing)}/{self.count} {self.kind} shards into "
            f"{self.out}: {self.records} record(s), {self.duplicates} duplicate(s) dropped{gap}"
        )


def read_shard(path: str | Path) -> ShardFile:
    """The ``ShardFile`` of a shard output (a directory, or an ``ssa rft`` targets file)."""
    p = Path(path)
    f = shard_file_path(p, "rft" if p.is_file() else "eval")
    if not f.is_file():
        raise InputError(f"{path} is not a shard's output (no {f.name}; made with --shard i/n?)")
    try:
        return ShardFile.model_validate_json(f.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"{f} is not a shard file: {exc}") from None


def _check_same(paths: list[Path], files: list[ShardFile]) -> None:
    first, head = files[0], without_created(files[0].manifest)
    seen: dict[int, Path] = {}
    for path, f in zip(paths, files, strict=True):
        if f.kind != first.kind or f.shard[1] != first.shard[1]:
            raise ConfigError(
                "shards",
                f"{path} is shard {f.shard[0]}/{f.shard[1]} of a {f.kind} job, but {paths[0]} "
                f"is shard {first.shard[0]}/{first.shard[1]} of a {first.kind} job",
            )
        m = without_created(f.manifest)
        if m != head:
            keys = sorted(k for k in set(m) | set(head) if m.get(k) != head.get(k))
            raise ConfigError(
                "shards",
                f"{path} was made from another manifest than {paths[0]} (differs in: "
                f"{', '.join(keys)}); only shards of one job can be merged",
            )
        if f.shard[0] in seen:
            raise InputError(f"shard {f.shard[0]} is given twice: {seen[f.shard[0]]} and {path}")
        seen[f.shard[0]] = path


def _unique(lines: list[str]) -> tuple[list[str], int]:
    kept, ids, dup = [], set(), 0
    for line in lines:
        key = str(json.loads(line)["id"])
        if key in ids:
            dup += 1
            continue
        ids.add(key)
        kept.append(line)
    return kept, dup


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _lines_of(path: Path) -> list[str]:
    """Complete lines of a JSONL file (a torn last line is skipped)."""
    if not path.is_file():
        return []
    text = read_text(path)
    body = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    return [ln for ln in body.splitlines() if ln.strip()]


def merge(out: str | Path, shards: list[str | Path]) -> MergeReport:
    """Merge ``shards`` into ``out`` (see the module doc)."""
    if not shards:
        raise InputError("give the shards' outputs to merge")
    paths = [Path(s) for s in shards]
    files = [read_shard(p) for p in paths]
    _check_same(paths, files)
    order = sorted(range(len(files)), key=lambda i: files[i].shard[0])
    paths, files = [paths[i] for i in order], [files[i] for i in order]
    kind, count = files[0].kind, files[0].shard[1]
    missing = sorted(set(range(count)) - {f.shard[0] for f in files})
    out = Path(out)
    if kind == "collect":
        kept, dup = _unique([ln for p in paths for ln in record_lines(p)])
        _write(out / MANIFEST, (paths[0] / MANIFEST).read_text(encoding="utf-8"))
        _write(out / RECORDS, "".join(ln + "\n" for ln in kept))
        n = len(kept)
    elif kind == "rft":
        kept, dup = _unique([ln for p in paths for ln in _lines_of(p)])
        man = paths[0].with_name(paths[0].name + ".manifest.json")
        _write(out.with_name(out.name + ".manifest.json"), man.read_text(encoding="utf-8"))
        _write(out, "".join(ln + "\n" for ln in kept))
        n = len(kept)
    else:
        n, dup = _merge_eval(out, paths, files[0].manifest)
    info = {"kind": kind, "shards": [f"{f.shard[0]}/{count}" for f in files], "missing": missing}
    target = out.with_name(out.name + ".merged.json") if kind == "rft" else out / "merged.json"
    _write(target, json.dumps(info, indent=2))
    return MergeReport(out, kind, n, dup, missing, count)


def _merge_eval(out: Path, paths: list[Path], manifest: dict[str, Any]) -> tuple[int, int]:
    names: list[str] = list(manifest.get("configs", {}))
    rows, recs, total, dups = [], {}, 0, 0
    for name in names:
        lines = [
            ln
            for p in paths
            for ln in _lines_of(p / f"{name}.jsonl")
            if json.loads(ln).get("config", name) == name
        ]
        kept, dup = _unique(lines)
        _write(out / f"{name}.jsonl", "".join(ln + "\n" for ln in kept))
        recs[name] = [json.loads(ln) for ln in kept]
        rows.append(summarize(name, recs[name]))
        total, dups = total + len(kept), dups + dup
    if len(names) > 1:
        add_paired(rows, recs, manifest.get("baseline") or names[0])
    _write(out / "summary.json", json.dumps(rows, indent=2))
    _write(out / "summary.md", format_table(rows) + "\n")
    return total, dups
