"""The learned aggregator: trained on a small synthetic collection where confidence tells."""

from __future__ import annotations

import random

import pytest

from ponder.aggregator import LearnedAggregator, build_aggregator
from ponder.aggregator.learned import ReasonerMismatch, load_artifact
from ponder.aggregator.learned_features import group_features, resolve_families
from ponder.behaviour.outcomes import sample_outcomes
from ponder.behaviour.records import (
    DatasetInfo,
    Manifest,
    ModelInfo,
    ProbeRecord,
    QuestionRecord,
    SampleRecord,
)
from ponder.cli import main
from ponder.errors import ConfigError
from ponder.learning.learned.train import train_artifact
from ponder.protocol.actions import Task


def manifest(sha: str = "a" * 64, name: str = "tiny") -> Manifest:
    return Manifest(
        model=ModelInfo(name=name, sha256=sha),
        templates={"cot_user": "t1"},
        settings={"k": 8},
        seed=0,
        dataset=DatasetInfo(path="train.jsonl", sha256="d", rows=100),
    )


def sample(answer: str, gold: str, conf: float, rng: random.Random) -> SampleRecord:
    n = rng.randint(80, 200)
    return SampleRecord(
        seed=0,
        text=f"... \\boxed{{{answer}}}",
        answer=answer,
        correct=answer == gold,
        finish_reason="stop",
        tokens=n,
        lp=[-0.3] * n,
        conf=[conf + rng.gauss(0, 0.2) for _ in range(n)],
        probes=[ProbeRecord(at=64, answer=answer if rng.random() < 0.5 else "0", correct=False)],
        critique_p_yes=rng.random(),
    )


def synthetic(n: int, seed: int) -> list[QuestionRecord]:
    """The right answer is a confident minority (3 of 8); a wrong one is the unsure majority."""
    rng = random.Random(seed)
    recs = []
    for q in range(n):
        gold, wrong = str(10 + q), str(100 + q)
        samples = [sample(gold, gold, 4.0 + rng.gauss(0, 0.3), rng) for _ in range(3)]
        samples += [sample(wrong, gold, 2.0 + rng.gauss(0, 0.3), rng) for _ in range(5)]
        rng.shuffle(samples)
        recs.append(QuestionRecord(id=str(q), question=f"q{q}", gold=gold, samples=samples))
    return recs


@pytest.fixture(scope="module")
def artifact_path(tmp_path_factory):
    art = train_artifact(manifest(), synthetic(30, 1), "all")
    return str(art.save(tmp_path_factory.mktemp("learned") / "model.json"))


def test_features_of_groups():
    rec = synthetic(1, 2)[0]
    groups, rows = group_features(sample_outcomes(rec, manifest()), 8)
    by = {g.answer: r for g, r in zip(groups, rows, strict=True)}
    assert by[rec.gold]["share"] == pytest.approx(3 / 8)
    assert by[rec.gold]["plurality"] == 0.0
    assert by[rec.gold]["lowest_group_rel"] > 0 > by["100"]["lowest_group_rel"]
    assert 0 <= by[rec.gold]["probe_agree"] <= 1
    assert resolve_families("live") == ("votes", "confidence", "length", "form")
    with pytest.raises(ConfigError, match="unknown feature family"):
        resolve_families("votes,vibes")


def test_learned_beats_majority_on_held_out_questions(artifact_path):
    agg = build_aggregator({"name": "learned", "artifact": artifact_path})
    assert isinstance(agg, LearnedAggregator)
    test = synthetic(20, 99)
    right = 0
    for rec in test:
        out = agg.choose(Task(rec.question), sample_outcomes(rec, manifest()))
        right += out.answer == rec.gold
        assert 0.0 <= (out.confidence or 0) <= 1.0
    majority = build_aggregator("majority")
    maj = sum(
        majority.choose(Task(r.question), sample_outcomes(r, manifest())).answer == r.gold
        for r in test
    )
    assert maj == 0 and right >= 18
    art = load_artifact(artifact_path)
    assert art.manifest.model.sha256 == "a" * 64
    assert art.training["questions"] == 30


def test_other_reasoner_is_refused_unless_overridden(artifact_path):
    rec = synthetic(1, 3)[0]
    other = sample_outcomes(rec, manifest(sha="b" * 64, name="other"))
    with pytest.raises(ReasonerMismatch, match="allow_other_reasoner"):
        LearnedAggregator(artifact=artifact_path).choose(Task("q"), other)
    with pytest.raises(ReasonerMismatch):
        LearnedAggregator(artifact=artifact_path).check_manifest(manifest(sha="b" * 64))
    ok = LearnedAggregator(artifact=artifact_path, allow_other_reasoner=True)
    assert ok.choose(Task("q"), other).answer is not None
    # live samples do not name their reasoner: the config must
    unnamed = sample_outcomes(rec)
    with pytest.raises(ReasonerMismatch, match="reasoner: default"):
        LearnedAggregator(artifact=artifact_path).choose(Task("q"), unnamed)
    named = LearnedAggregator(artifact=artifact_path, reasoner="tiny")
    assert named.choose(Task("q"), unnamed).answer is not None


def test_live_features_artifact_needs_no_collector_data(tmp_path):
    art = train_artifact(manifest(), synthetic(20, 4), "live")
    path = art.save(tmp_path / "live.json")
    rec = synthetic(1, 5)[0]
    outs = sample_outcomes(rec, manifest())
    for o in outs:
        o.data.pop("critique_p_yes", None)
        o.data.pop("probes", None)
    assert LearnedAggregator(artifact=str(path)).choose(Task("q"), outs).answer == rec.gold
    full = train_artifact(manifest(), synthetic(20, 4), "all").save(tmp_path / "all.json")
    with pytest.raises(ConfigError, match="critique"):
        LearnedAggregator(artifact=str(full)).choose(Task("q"), outs)


def test_cli_trains_from_a_collection_dir(tmp_path, capsys):
    coll = tmp_path / "coll"
    coll.mkdir()
    (coll / "manifest.json").write_text(manifest().model_dump_json())
    (coll / "records.jsonl").write_text(
        "".join(r.model_dump_json() + "\n" for r in synthetic(15, 6))
    )
    out = tmp_path / "m.json"
    assert main(["aggregate", "train", "--collection", str(coll), "--out", str(out)]) == 0
    assert load_artifact(out).training["questions"] == 15
    assert "cv pick accuracy" in capsys.readouterr().out
    assert main(["aggregate", "train", "--collection", str(tmp_path), "--out", str(out)]) == 2


def test_eval_offline_reads_a_collection_dir(tmp_path, artifact_path, capsys):
    coll = tmp_path / "coll"
    coll.mkdir()
    (coll / "manifest.json").write_text(manifest().model_dump_json())
    (coll / "records.jsonl").write_text(
        "".join(r.model_dump_json() + "\n" for r in synthetic(10, 7))
    )
    spec = f'learned={{"name": "learned", "artifact": "{artifact_path}"}}'
    rc = main(
        [
            "eval",
            "--offline",
            str(coll),
            "--aggregator",
            "majority",
            "--aggregator",
            spec,
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
            "--no-plot",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| majority | 10 | 0.0% |" in out and "vs majority" in out
