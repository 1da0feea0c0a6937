"""Sealing a behaviour collection into fixed gzip chunks: readable as one collection, resumable,
idempotent, byte-stable, and refusing another reasoner's corpus."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from ponder.behaviour.records import (
    MANIFEST,
    RECORDS,
    DatasetInfo,
    Manifest,
    ModelInfo,
    QuestionRecord,
    SampleRecord,
    read_collection,
)
from ponder.cli import main
from ponder.errors import ConfigError
from ponder.evaluation.driver import Output
from ponder.learning.collect.collector import collection_output
from ponder.learning.collect.seal import seal


def manifest(sha: str = "a" * 64) -> Manifest:
    return Manifest(
        model=ModelInfo(name="m", file="m.gguf", sha256=sha),
        templates={"cot_user": "1"},
        settings={"k": 1},
        seed=0,
        dataset=DatasetInfo(path="d.jsonl", sha256="d", rows=10),
    )


def record(i: int) -> str:
    s = SampleRecord(
        seed=0, text=f"t{i}", answer=str(i), correct=i % 2 == 0, finish_reason="stop", tokens=i
    )
    return QuestionRecord(id=f"q{i}", question=f"Q{i}?", gold=str(i), samples=[s]).model_dump_json()


def make(directory: Path, n: int, torn: bool = False, sha: str = "a" * 64) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).write_text(manifest(sha).model_dump_json(indent=2))
    text = "".join(record(i) + "\n" for i in range(n))
    if torn:
        text += record(n)[:20]
    (directory / RECORDS).write_text(text)
    return directory


def ids(directory: Path) -> list[str]:
    return [r.id for r in read_collection(directory)[1]]


def test_seal_into_another_directory_writes_full_chunks_only(tmp_path: Path) -> None:
    src = make(tmp_path / "src", 7, torn=True)
    report = seal(src, tmp_path / "corpus", chunk=3)
    assert [p.name for p in report.chunks] == ["records-0000.jsonl.gz", "records-0001.jsonl.gz"]
    assert (report.sealed, report.left) == (6, 1)
    assert ids(tmp_path / "corpus") == [f"q{i}" for i in range(6)]
    # the chunk holds the source lines byte for byte
    lines = gzip.decompress((tmp_path / "corpus" / "records-0000.jsonl.gz").read_bytes())
    assert lines.decode().splitlines() == [record(i) for i in range(3)]
    # the source is only read
    assert ids(src) == [f"q{i}" for i in range(7)]


def test_sealing_again_adds_only_new_full_chunks_and_is_byte_stable(tmp_path: Path) -> None:
    src = make(tmp_path / "src", 4)
    seal(src, tmp_path / "a", chunk=2)
    first = (tmp_path / "a" / "records-0000.jsonl.gz").read_bytes()
    assert seal(src, tmp_path / "a", chunk=2).chunks == []
    make(src, 7)  # the collection grew
    report = seal(src, tmp_path / "a", chunk=2)
    assert [p.name for p in report.chunks] == ["records-0002.jsonl.gz"]
    assert (tmp_path / "a" / "records-0000.jsonl.gz").read_bytes() == first
    seal(src, tmp_path / "b", chunk=2)  # same records, same bytes (no gzip timestamp)
    assert (tmp_path / "b" / "records-0001.jsonl.gz").read_bytes() == (
        tmp_path / "a" / "records-0001.jsonl.gz"
    ).read_bytes()


def test_sealing_in_place_moves_lines_out_of_the_live_file(tmp_path: Path) -> None:
    src = make(tmp_path / "src", 5)
    report = seal(src, chunk=2)
    assert (report.sealed, report.left) == (4, 1)
    assert (src / RECORDS).read_text() == record(4) + "\n"
    assert ids(src) == [f"q{i}" for i in range(5)]  # nothing lost, nothing doubled


def test_a_resumed_collection_skips_sealed_questions(tmp_path: Path) -> None:
    src = make(tmp_path / "src", 5)
    seal(src, chunk=2)
    out: Output = collection_output(src, manifest())
    assert out.open() == {f"q{i}" for i in range(5)}


def test_sealing_into_another_reasoners_corpus_is_refused(tmp_path: Path) -> None:
    seal(make(tmp_path / "src", 2), tmp_path / "corpus", chunk=1)
    other = make(tmp_path / "other", 2, sha="b" * 64)
    with pytest.raises(ConfigError, match="reasoner"):
        seal(other, tmp_path / "corpus", chunk=1)


def test_cli_seal_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make(tmp_path / "src", 4)
    assert main(["corpus", "seal", str(src), "--into", str(tmp_path / "c"), "--chunk", "2"]) == 0
    assert "sealed 4 record(s)" in capsys.readouterr().out
    assert main(["corpus", "info", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "questions: 4 (2 sealed chunk(s))" in out and "right 50.0%" in out
    assert main(["corpus", "seal", str(src), "--chunk", "0"]) == 2
    assert json.loads((tmp_path / "c" / MANIFEST).read_text())["model"]["sha256"] == "a" * 64
