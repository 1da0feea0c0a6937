"""DRR offline: features, checkpoint states, metrics, DM training/artifact, replay policies."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from ponder.behaviour.records import QuestionRecord, read_collection
from ponder.behaviour.stats import auroc, ece, paired, wilson
from ponder.errors import ConfigError, InputError
from ponder.learning.drr.evaluate import evaluate
from ponder.learning.drr.replay import (
    ScoredQuestion,
    adaptive,
    beta,
    dm_sample,
    dm_think,
    dynasor,
    fixed,
    full,
    score_collection,
)
from ponder.learning.drr.states import trace_states
from ponder.learning.drr.train import train_dm
from ponder.stopping.features import (
    CHECKPOINT_FEATURES,
    CheckpointState,
    beta_stay,
    checkpoint_features,
    majority,
)
from ponder.stopping.model import DM
from tests.unit.drr_helpers import agree_dm, manifest, sample, synthetic


def feats(**kw: object) -> dict[str, float]:
    base = dict(
        at=128, lp=[-0.5] * 128, conf=[1.0] * 128, finished=False, cut=False, max_tokens=320
    )
    base.update(kw)
    return dict(zip(CHECKPOINT_FEATURES, checkpoint_features(CheckpointState(**base)), strict=True))  # type: ignore[arg-type]


def test_features_of_a_stable_answer() -> None:
    f = feats(answers=("3", "3.0", "3"))
    assert f["agree_prev"] == 1 and f["run_length"] == 3 and f["last3_agree"] == 1
    assert f["share_current"] == 1 and f["distinct_share"] == pytest.approx(1 / 3)
    assert f["position"] == pytest.approx(0.4) and f["n_answers"] == 3
    assert f["lp_mean"] == pytest.approx(-0.5) and f["conf_lowest_group"] == pytest.approx(1.0)
    assert f["numeric_answer"] == 1 and f["has_answer"] == 1


def test_features_of_an_unsettled_answer() -> None:
    f = feats(answers=("1", None, "2"), finished=True, lp=[], conf=[])
    assert f["agree_prev"] == 0 and f["run_length"] == 1 and f["last3_agree"] == 0
    assert f["distinct_share"] == pytest.approx(2 / 3) and f["finished"] == 1
    assert f["lp_mean"] == 0.0  # no logprobs: a neutral 0
    none = feats(answers=(None,))
    assert none["has_answer"] == 0 and none["agree_prev"] == 0 and none["share_current"] == 0


def test_states_of_finished_and_cut_traces() -> None:
    fin = trace_states(sample(["4", "3"], "3", "3", 150), 320)
    assert [(s.state.at, s.answer, s.correct, s.tokens, s.final) for s in fin] == [
        (64, "4", False, 66, False),
        (128, "3", True, 132, False),
        (150, "3", True, 154, True),
    ]
    assert fin[-1].state.finished and fin[-1].state.answers == ("4", "3", "3")
    cut = trace_states(sample(["1", "2", "2"], None, "2", 192, cut=True), 192)
    assert len(cut) == 3  # the probe at the cut is the final state, not a checkpoint
    last = cut[-1]
    assert last.answer == "2" and last.correct and last.tokens == 198 and last.state.cut
    assert last.state.answers == ("1", "2", "2")


def test_metrics() -> None:
    assert auroc([True, False, True, False], [0.9, 0.1, 0.8, 0.2]) == 1.0
    assert auroc([True, False], [0.5, 0.5]) == 0.5
    assert auroc([True, True], [0.1, 0.2]) is None
    assert ece([True, False], [1.0, 0.0]) == 0.0
    assert ece([True, True, False, False], [0.5] * 4) == 0.0
    lo, hi = wilson(30, 100)
    assert 0.21 < lo < 0.22 and 0.39 < hi < 0.40
    pr = paired([True, True, False], [False, True, True])
    assert (pr.n, pr.won, pr.lost, pr.p_value) == (3, 1, 1, 1.0)
    assert beta_stay(0, 0) == pytest.approx(0.5) and beta_stay(4, 0) > 0.95
    assert majority(["2", "1", "1", "2"]) == "2" and majority([None]) is None


def _scored(dm: DM, rec: QuestionRecord) -> ScoredQuestion:
    return score_collection(dm, [rec], 320)[0]


def test_sequential_policies_stop_where_expected() -> None:
    dm = agree_dm()
    rec = QuestionRecord(
        id="1", question="q", gold="3", samples=[sample(["4", "3", "3"], "3", "3", 250)]
    )
    t = _scored(dm, rec).traces[0]
    assert full(t).tokens == 250 and full(t).correct
    d2 = dynasor(t, 2)  # "3","3" at 192: stop there
    assert (d2.stopped_at, d2.tokens, d2.correct) == (2, 192 + 6, True)
    d3 = dynasor(t, 3)  # never three in a row among the probes: the full trace, probes paid
    assert (d3.stopped_at, d3.tokens) == (3, 250 + 6)
    s = dm_think(t, 0.5)  # agree_prev first true at the third probe
    assert (s.stopped_at, s.tokens, s.correct) == (2, 198, True)
    assert dm_think(t, 0.99).stopped_at == 3


def test_parallel_policies_stop_where_expected() -> None:
    dm = agree_dm(manifest(k=4))
    samples = [sample([], a, "5", 100) for a in ("5", "5", "7", "7")]
    q = _scored(dm, QuestionRecord(id="1", question="q", gold="5", samples=samples))
    assert fixed(q, 4).correct and fixed(q, 4).tokens == 400  # tie: first seen wins
    assert fixed(q, 1).tokens == 100
    assert dm_sample(q, dm, 0.6).stopped_at == 2  # Beta stay of 2:0 = 0.875 -> P 0.62
    assert dm_sample(q, dm, 0.9).stopped_at == 4
    assert beta(q, 0.85).stopped_at == 2 and beta(q, 0.99).stopped_at == 4
    assert adaptive(q, 0.75).stopped_at == 2  # doubling 2, 4: 2 of 2 agree
    other = [sample([], a, "5", 100) for a in ("5", "7", "9", "9")]
    q2 = _scored(dm, QuestionRecord(id="2", question="q", gold="5", samples=other))
    assert adaptive(q2, 0.75).stopped_at == 4 and not fixed(q2, 4).correct


def test_training_learns_a_separable_signal(tmp_path: Path) -> None:
    m, recs = synthetic(tmp_path / "train")
    dm = train_dm(m, recs)
    assert dm.checkpoint.cv["auroc_logistic"] > 0.8
    assert dm.sampling is not None and dm.sampling.cv["auroc_logistic"] > 0.5
    path = dm.save(tmp_path / "dm.json")
    assert path.stat().st_size < 1_000_000
    back = DM.load(path)
    st = trace_states(recs[0].samples[0], 320)[-1].state
    assert back.p_checkpoint(st) == pytest.approx(dm.p_checkpoint(st))
    # held out (other questions): the DM ranks right above wrong
    tm, trecs = synthetic(tmp_path / "test", seed=1, first_id=1000)
    report = evaluate(back, tm, trecs, tmp_path / "eval", train_records=recs)
    dm_final = next(r for r in report["judges"] if r["judge"] == "DM")
    assert dm_final["auroc"] > 0.8
    assert {"reliability.png", "sequential.png", "parallel.png", "report.txt"} <= {
        p.name for p in (tmp_path / "eval").iterdir()
    }
    assert report["best_at_baseline"] is not None


def test_boosted_trees_export_matches_sklearn() -> None:
    import numpy as np
    from sklearn.ensemble import GradientBoostingClassifier

    from ponder.learning.drr.train import _export

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    est = GradientBoostingClassifier(n_estimators=20, max_depth=2, random_state=0).fit(x, y)
    model = _export("gbt", est, list(map(bool, y)))
    ours = [model.raw(list(r)) for r in x[:20]]
    assert ours == pytest.approx(list(est.decision_function(x[:20])), abs=1e-6)


def test_manifest_refusal_and_override() -> None:
    dm = agree_dm(manifest(name="a"))
    with pytest.raises(ConfigError, match="trained on reasoner a .* allow_other_reasoner"):
        dm.check_reasoner(manifest(name="b"))
    dm.check_reasoner(manifest(name="b"), allow_other=True)
    dm.check_reasoner(manifest(name="a"))
    with pytest.raises(ConfigError, match="probe_every"):
        dm.check_settings(dict(dm.manifest.templates), probe_every=32)


def test_training_refuses_degenerate_data(tmp_path: Path) -> None:
    m, recs = synthetic(tmp_path / "c", questions=3)
    for r in recs:
        for s in r.samples:
            s.correct = False
            for p in s.probes:
                p.correct = False
    with pytest.raises(InputError, match="all .* wrong"):
        train_dm(m, recs)
    with pytest.raises(InputError, match="no question records"):
        train_dm(m, [])


def test_artifact_refuses_other_features(tmp_path: Path) -> None:
    dm = agree_dm()
    dm.checkpoint.features = ["something_else"]
    path = dm.save(tmp_path / "bad.json")
    with pytest.raises(InputError, match="feature list"):
        DM.load(path)


def test_cli_train_and_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ponder.cli import main

    synthetic(tmp_path / "train")
    synthetic(tmp_path / "test", seed=1, first_id=1000)
    out = tmp_path / "dm.json"
    assert main(["drr", "train", "--data", str(tmp_path / "train"), "--out", str(out)]) == 0
    assert "grouped 5-fold CV" in capsys.readouterr().out
    args = ["drr", "evaluate", "--dm", str(out), "--test", str(tmp_path / "test")]
    assert main([*args, "--out", str(tmp_path / "e"), "--no-plots"]) == 0
    text = capsys.readouterr().out
    assert "self-critique P(yes)" in text and "dm_sample@" in text and "beta@" in text
    # the same questions on both sides are refused
    bad = ["drr", "evaluate", "--train", str(tmp_path / "train"), "--test", str(tmp_path / "train")]
    assert main([*bad, "--out", str(tmp_path / "e2")]) == 2
    assert math.isfinite(read_collection(tmp_path / "test")[1][0].samples[0].lp[0])


def test_platt_never_inverts_a_model() -> None:
    from ponder.learning.drr.train import platt

    a, b = platt([1.0, 2.0, 3.0, 4.0], [False, False, True, True])
    assert a > 0
    a, b = platt([1.0, 2.0, 3.0, 4.0], [True, True, False, False])  # backwards out of fold
    assert a == 0.0 and b == pytest.approx(0.0)
