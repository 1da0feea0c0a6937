"""SSA training data: byte-identical to the inference prompt, balanced by kind, with a manifest."""

from __future__ import annotations

import json
from pathlib import Path

from ponder.aggregator.ssa import SSA
from ponder.behaviour.records import (
    DatasetInfo,
    Manifest,
    ModelInfo,
    QuestionRecord,
    SampleRecord,
)
from ponder.learning.ssa.data import build_ssa_examples, candidate_outcomes, write_ssa_examples
from ponder.protocol.actions import Task


def _rec(qid: str, answers: list[str | None], gold: str = "4") -> QuestionRecord:
    samples = [
        SampleRecord(
            seed=i,
            text=f"step {i} " * 50 + (f"\\boxed{{{a}}}" if a else ""),
            answer=a,
            correct=a == gold,
            finish_reason="stop",
            tokens=100,
        )
        for i, a in enumerate(answers)
    ]
    return QuestionRecord(id=qid, question=f"question {qid}?", gold=gold, samples=samples)


def _collection(tmp: Path, records: list[QuestionRecord]) -> Path:
    man = Manifest(
        model=ModelInfo(name="m", sha256="s"),
        templates={},
        settings={},
        seed=0,
        dataset=DatasetInfo(path="d", sha256="x", rows=len(records)),
    )
    (tmp / "manifest.json").write_text(man.model_dump_json())
    (tmp / "records.jsonl").write_text("".join(r.model_dump_json() + "\n" for r in records))
    return tmp


def test_prompt_is_the_inference_prompt(tmp_path: Path) -> None:
    rec = _rec("a", ["5", "5", "4"])
    d = _collection(tmp_path, [rec])
    agg = SSA(max_candidate_tokens=20)
    examples, info = build_ssa_examples(d, k=3, subsets=1, aggregator=agg)
    [ex] = examples
    assert ex.kind == "teaching" and ex.majority == "5"
    live, _ = agg.request(Task(rec.question), candidate_outcomes(rec, [0, 1, 2]))
    assert json.dumps(ex.messages) == json.dumps(list(live.messages or ()))
    assert "[... reasoning truncated ...]" in ex.messages[1]["content"]
    assert (
        info["k"] == 3 and info["max_candidate_tokens"] == 20 and info["sampler"]["sha256"] == "s"
    )


def test_mix_is_balanced(tmp_path: Path) -> None:
    records = [_rec(f"t{i}", ["5", "5", "4"]) for i in range(4)]  # teaching
    records += [_rec(f"e{i}", ["4", "4", "4"]) for i in range(10)]  # majority right
    records += [_rec(f"n{i}", ["1", "2", "3"]) for i in range(10)]  # none right
    d = _collection(tmp_path, records)
    examples, info = build_ssa_examples(
        d, k=3, subsets=1, majority_right_per_teaching=0.5, none_right_share=0.2
    )
    assert info["available"] == {"teaching": 4, "majority_right": 10, "none_right": 10}
    assert info["kept"] == {"teaching": 4, "majority_right": 2, "none_right": 2}
    assert len(examples) == 8
    out = write_ssa_examples(examples, info, tmp_path / "ssa" / "train.jsonl")
    assert len(out.read_text().splitlines()) == 8
    assert json.loads((tmp_path / "ssa" / "train.jsonl.manifest.json").read_text())["k"] == 3


def test_several_set_sizes_mix(tmp_path: Path) -> None:
    rec = _rec("a", ["5", "5", "4", "4", "5"])
    d = _collection(tmp_path, [rec])
    examples, info = build_ssa_examples(d, k=[3, 5], subsets=4, none_right_share=0.0)
    sizes = sorted({len(e.candidates) for e in examples})
    assert sizes == [3, 5] and info["k"] == [3, 5]
    five = [e for e in examples if len(e.candidates) == 5]
    assert len(five) == 1  # one way to pick 5 of 5: repeated draws are not duplicated
    assert "Below are 5 candidate solutions" in five[0].messages[1]["content"]
