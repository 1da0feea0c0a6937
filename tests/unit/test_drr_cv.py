"""``ponder drr cv``: folds by question, pooled collections, costs from usage, the choice made
on out-of-fold numbers, the report files, and ``ablate --cv``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.behaviour.records import read_collection
from ponder.errors import InputError
from ponder.learning.drr.ablate import ablate_cv
from ponder.learning.drr.costs import Cost, question_costs, signal_costs
from ponder.learning.drr.cv import CVRun, Point, cross_validate
from ponder.learning.drr.cv_report import ChosenStops, choice_cv, choose, write_report
from ponder.learning.drr.folds import pool_collections, question_folds
from tests.unit.drr_helpers import manifest, synthetic

FIXTURE = Path(__file__).parents[1] / "fixtures" / "behaviour" / "train"


def test_folds_are_by_question_balanced_and_seeded() -> None:
    f = question_folds(11, 5, seed=3)
    assert sorted({*f}) == [0, 1, 2, 3, 4] and max(f.count(i) for i in range(5)) == 3
    assert f == question_folds(11, 5, seed=3) != question_folds(11, 5, seed=4)
    assert question_folds(3, 5).count(0) == 1  # never more folds than questions
    with pytest.raises(InputError):
        question_folds(1, 5)


def test_pooled_collections_read_a_repeated_question_once(tmp_path: Path) -> None:
    m, recs = synthetic(tmp_path / "a", questions=4)
    _, more = synthetic(tmp_path / "b", questions=6, seed=1, first_id=2)  # ids 2..7
    pooled, records, dropped = pool_collections([(m, recs), (m, more)])
    assert dropped == 2 and [q.id for q in records] == [str(i) for i in range(8)]
    assert records[2] is recs[2]  # the first collection's copy
    other = manifest(max_tokens=512, k=6)
    with pytest.raises(InputError, match="max_tokens"):
        pool_collections([(m, recs), (other, more)])
    with pytest.raises(InputError, match="different reasoners"):
        pool_collections([(m, recs), (manifest(k=6, name="other"), more)])


def test_costs_rebuild_the_recorded_usage() -> None:
    _, records = read_collection(FIXTURE)
    q = records[0]
    c = question_costs(q, 64)
    bp = q.usage["by_purpose"]
    probed = c.drawn(8, 1, probed=True)
    # probed samples (segments + probes) cost what the collector recorded, critique aside
    assert probed.prompt == pytest.approx(
        bp["reason"]["prompt_tokens"] + bp["probe"]["prompt_tokens"]
    )
    assert probed.calls == bp["reason"]["calls"] + bp["probe"]["calls"]
    assert probed.completion == bp["reason"]["completion_tokens"] + bp["probe"]["completion_tokens"]
    # one plain call each: the question's prompt once a sample, far less than the segments'
    assert c.prompt is not None and 40 < c.prompt < 200
    plain = c.drawn(8, None, probed=False)
    assert plain.calls == 8 and plain.prompt == pytest.approx(8 * c.prompt)
    assert plain.path_tokens == max(s.tokens for s in q.samples) and plain.path_calls == 1
    # rounds of 2 over 4 samples: the longest of each round, one after the other
    t = [s.tokens for s in q.samples]
    assert c.drawn(4, 2, False).path_tokens == max(t[:2]) + max(t[2:4])
    assert c.drawn_in([2, 4, 8]).path_tokens == max(t[:2]) + max(t[2:4]) + max(t[4:8])
    rows = {s.signal: s for s in signal_costs(records, 64)}
    assert rows["critique"].calls == 8 and rows["probe"].completion > 0
    assert rows["reason, one call each (estimated)"].prompt < rows["reason"].prompt / 5


def test_choose_takes_the_cheapest_within_the_margin() -> None:
    qs = [str(i) for i in range(10)]

    def pt(policy: str, param: float, right: int, tokens: float, r: int | None = None) -> Point:
        p = Point(policy, r, param)
        for i, q in enumerate(qs):
            p.correct[q] = i < right
            p.cost[q] = Cost(tokens, 10.0, 1.0, tokens, 1.0)
            p.drawn[q] = 1
        return p

    points = [
        pt("fixed", 8, 5, 800),
        pt("fixed", 4, 4, 400),
        pt("dm_sample_free", 0.3, 4, 200, 1),  # 10 points under maj@8: out of the margin
        pt("dm_sample_free", 0.5, 5, 300, 1),  # the cheapest within it
        pt("dm_sample_free", 0.7, 5, 500, 1),
        pt("beta", 0.9, 3, 100),  # never within it: reported, no threshold
    ]
    run = CVRun(qs, 5, dict.fromkeys(qs, 0), 8, points, [], ["votes"], ["length"], "fixed@8")
    chosen = {c.policy: c for c in choose(run, margin=0.02)}
    assert chosen["dm_sample_free/r1"].threshold == 0.5
    assert chosen["dm_sample_free/r1"].completion_pct == pytest.approx(37.5)
    assert chosen["fixed"].threshold == 8  # maj@4 loses 10 points
    assert chosen["beta"].threshold is None
    wide = {c.policy: c for c in choose(run, margin=0.1)}
    assert wide["dm_sample_free/r1"].threshold == 0.3 and wide["fixed"].threshold == 4
    # the choice cross-validated: even questions are fold 0, odd ones fold 1; fold 0 is scored
    # with 0.3 (picked on the odd questions, where it ties maj@8), fold 1 with 0.5
    run.folds, run.fold_of = 2, {q: int(q) % 2 for q in qs}
    nested = {r["policy"]: r for r in choice_cv(run, margin=0.02)}
    free = nested["dm_sample_free/r1"]
    assert free["picks"] == ["0.3", "0.5"] and free["accuracy"] == 0.4
    assert (free["won"], free["lost"]) == (0, 1)


def test_cross_validation_holds_every_question_out_once(tmp_path: Path) -> None:
    m, recs = synthetic(tmp_path / "c", questions=12, k=4)
    lines: list[str] = []
    run = cross_validate(m, recs, folds=3, progress=lines.append)
    assert len(lines) == 3 and run.folds == 3 and run.k == 4 and run.baseline == "fixed@4"
    assert sorted(run.fold_of.values()).count(0) == 4
    labels = {p.label for p in run.points}
    assert {"fixed@4", "dm_sample/r1@0.5", "dm_sample_free/r2@0.5", "bayes_free/r1@0.9"} <= labels
    assert all(len(p.correct) == 12 for p in run.points)
    free = run.point("dm_sample_free/r1@0.99")
    probed = run.point("dm_sample/r1@0.99")
    # the probed policy pays its probes; the probe-free one pays the samples' tokens alone
    assert sum(c.completion for c in free.cost.values()) <= sum(
        c.completion for c in probed.cost.values()
    )
    assert run.free_families == ["confidence", "length"]
    judges = {j.name: j for j in run.judges}
    assert len(judges["DM without probes, P(correct) at final answers"].y) == 12 * 4
    text, stops = write_report(
        tmp_path / "out", run, margin=0.02, train=["c"], seed=0, resamples=50, signals=[]
    )
    assert "Chosen thresholds" in text and "dm_sample_free/r1" in text
    assert "The choice itself cross-validated" in text
    back = ChosenStops.load(tmp_path / "out" / "chosen.json")
    assert back == stops and back.questions == 12
    assert isinstance(back.threshold("dm_sample_free/r1"), float | None)
    data = json.loads((tmp_path / "out" / "cv.json").read_text(encoding="utf-8"))
    assert data["points"] and data["judges"][0]["auroc"] is not None


def test_cli_cv_train_no_probes_and_ablate_cv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ponder.cli import main

    synthetic(tmp_path / "a", questions=8, k=4)
    synthetic(tmp_path / "b", questions=6, k=4, seed=1, first_id=4)  # 2 repeats
    out = tmp_path / "cv"
    args = ["drr", "cv", "--train", str(tmp_path / "a"), "--train", str(tmp_path / "b")]
    assert main([*args, "--folds", "2", "--resamples", "20", "--out", str(out)]) == 0
    assert "10 questions; 4 repeated ones read once" in capsys.readouterr().err
    assert {p.name for p in out.iterdir()} == {"cv.md", "cv.json", "chosen.json"}
    dm = tmp_path / "free.json"
    train = ["drr", "train", "--data", str(tmp_path / "a"), "--out", str(dm), "--no-probes"]
    assert main(train) == 0
    assert "confidence, length (probe-free)" in capsys.readouterr().out
    assert json.loads(dm.read_text(encoding="utf-8"))["probe_free"] is True
    ab = ["drr", "ablate", "--train", str(tmp_path / "a"), "--cv", "2", "--resamples", "20"]
    assert main([*ab, "--no-learned", "--families", "votes,length"]) == 0
    table = capsys.readouterr().out
    assert "| votes+length |" in table and "| length (no probes: one-call end) |" in table
    assert main(["drr", "ablate", "--train", str(tmp_path / "a")]) == 2  # --test or --cv


def test_ablate_cv_rows(tmp_path: Path) -> None:
    m, recs = synthetic(tmp_path / "c", questions=10, k=4)
    rows = ablate_cv((m, recs, None), ["votes", "length"], folds=2, resamples=20, learned=False)
    assert [(r.families, r.probes) for r in rows] == [
        (("votes",), True),
        (("length",), True),
        (("votes", "length"), True),
        (("length",), False),
    ]
    assert all(r.dm_final.n == 40 for r in rows)
