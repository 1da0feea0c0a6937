"""AUROC with bootstrap intervals clustered by question, the coverage-accuracy curve, and
``ponder eval``'s selective-answering report."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ponder.behaviour.stats import auroc, auroc_ci, risk_coverage
from ponder.evaluation.coverage import coverage_row, format_coverage, report_coverage


def test_auroc_ci_keeps_the_one_class_edge_case() -> None:
    ci = auroc_ci([True, True, True], [0.1, 0.2, 0.3])
    assert ci.auroc is None and ci.lo is None and ci.text() == "n/a (one class)"
    assert auroc([True, True], [0.1, 0.2]) is None


def test_clustering_by_question_widens_the_interval() -> None:
    r = random.Random(0)
    y = [r.random() < 0.4 for _ in range(40)]
    p = [r.random() + 0.4 * t for t in y]
    # eight identical copies of every question: as many units, far fewer independent ones
    y8, p8 = [v for v in y for _ in range(8)], [v for v in p for _ in range(8)]
    groups = [i for i in range(40) for _ in range(8)]
    naive = auroc_ci(y8, p8, resamples=400)
    clustered = auroc_ci(y8, p8, groups, resamples=400)
    assert naive.auroc == clustered.auroc == pytest.approx(auroc(y, p))
    assert clustered.groups == 40 and naive.groups == 320
    assert clustered.lo is not None and naive.lo is not None
    assert clustered.hi - clustered.lo > 1.5 * (naive.hi - naive.lo)
    assert clustered.lo <= clustered.auroc <= clustered.hi
    assert auroc_ci(y8, p8, groups, resamples=50, seed=3) == auroc_ci(
        y8, p8, groups, resamples=50, seed=3
    )


def test_risk_coverage_answers_the_most_confident_first() -> None:
    correct = [True, False, True, False, False, True, False, False, True, False]
    conf = [0.9, 0.1, 0.8, 0.2, 0.3, 0.7, 0.4, 0.35, 0.6, 0.05]
    pts = risk_coverage(correct, conf)
    assert [(p.coverage, p.answered, p.correct) for p in pts] == [
        (1.0, 10, 4),
        (0.9, 9, 4),
        (0.8, 8, 4),
        (0.7, 7, 4),
        (0.5, 5, 4),
    ]
    assert pts[-1].accuracy == 0.8
    with pytest.raises(ValueError):
        risk_coverage([True], [0.5], [0.0])


def test_eval_coverage_counts_a_withheld_answer_and_writes_the_report(tmp_path: Path) -> None:
    import json

    recs = [
        {"id": "a", "correct": True, "p_correct": 0.9},
        {
            "id": "b",
            "correct": False,
            "p_correct": 0.2,
            "abstained": True,
            "withheld_correct": True,
        },
        {"id": "c", "correct": False, "p_correct": 0.6},
        {"id": "d", "correct": False},  # no confidence: not a unit
    ]
    row = coverage_row("drr", recs, resamples=50)
    assert row is not None and row["n"] == 3
    assert row["coverage"][0] == {"coverage": 1.0, "answered": 3, "accuracy": 2 / 3}
    assert "acc@80%" in format_coverage([row])
    assert coverage_row("maj", [{"id": "a", "correct": True}]) is None
    (tmp_path / "drr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    (tmp_path / "maj.jsonl").write_text(json.dumps({"id": "a", "correct": True}) + "\n")
    table = report_coverage(tmp_path, [{"config": "drr", "n": 4}, {"config": "maj", "n": 1}], False)
    assert "| drr | 3 |" in table and "maj" not in table
    assert (tmp_path / "coverage.md").is_file() and (tmp_path / "coverage.json").is_file()
