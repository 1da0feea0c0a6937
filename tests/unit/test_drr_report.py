"""``ponder drr report``: the held-out test report at the thresholds ``drr cv`` chose on train.

A plain test collection (no probes, no self-critique) reports the probed policies as not
replayable; a replayed policy's numbers are replay's at the chosen threshold; the selective
threshold comes from train alone; the CLI's errors name the path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.behaviour.records import MANIFEST, RECORDS, in_dataset_order, read_collection
from ponder.learning.drr.compare import bayes
from ponder.learning.drr.costs import question_costs
from ponder.learning.drr.cv import cross_validate, question_keys
from ponder.learning.drr.cv_report import ChosenStops, write_report
from ponder.learning.drr.replay import dm_sample, score_collection
from ponder.learning.drr.test_report import (
    SHARE,
    collection_signals,
    oof_confidences,
    threshold_at,
)
from ponder.learning.drr.test_report_markdown import format_report
from ponder.learning.drr.test_report_tables import HeldOut, held_out_report
from ponder.learning.drr.train import max_tokens_of
from tests.unit.drr_helpers import synthetic

FIXTURES = Path(__file__).parents[1] / "fixtures" / "behaviour"
Synth = tuple[Path, Path, Path, HeldOut]


def _chosen(train: Path, out: Path) -> Path:
    """``ponder drr cv`` on ``train`` (2 folds); a margin of 1 gives every policy a threshold."""
    m, recs = read_collection(train)
    run = cross_validate(m, recs, folds=2)
    write_report(out, run, margin=1.0, train=[str(train)], seed=0, resamples=20, signals=[])
    return out / "chosen.json"


def plain_copy(src: Path, out: Path) -> Path:
    """``src`` as ``--probe-every 320 --max-tokens 320 --no-self-critique`` records it: no
    probes, no critique, one reasoning call a sample (the question's prompt each)."""
    m, recs = read_collection(src)
    every = int(m.settings["probe_every"])
    settings = {**m.settings, "probe_every": max_tokens_of(m), "self_critique": False}
    lines = []
    for q in recs:
        prompt = round(question_costs(q, every).prompt or 0)
        q.samples = [
            s.model_copy(
                update={
                    "probes": [],
                    "critique_p_yes": None,
                    "usage": {"prompt": prompt, "completion": s.tokens, "calls": 1},
                }
            )
            for s in q.samples
        ]
        n, done = len(q.samples), sum(s.tokens for s in q.samples)
        reason = {"prompt_tokens": n * prompt, "completion_tokens": done, "calls": n}
        q.usage = {**reason, "by_purpose": {"reason": reason}}
        lines.append(q.model_dump_json(exclude_none=True) + "\n")
    out.mkdir(parents=True)
    manifest = m.model_copy(update={"settings": settings})
    (out / MANIFEST).write_text(manifest.model_dump_json(), encoding="utf-8")
    (out / RECORDS).write_text("".join(lines), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> HeldOut:
    """The fixture's train questions, and its test questions made plain."""
    d = tmp_path_factory.mktemp("plain")
    chosen = ChosenStops.load(_chosen(FIXTURES / "train", d / "cv"))
    test = plain_copy(FIXTURES / "test", d / "test")
    train = read_collection(FIXTURES / "train")
    return held_out_report(train, read_collection(test), chosen, d / "out", resamples=50)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """Synthetic train (16 questions) and a probed synthetic test (8 others), k = 4."""
    d = tmp_path_factory.mktemp("synth")
    synthetic(d / "train", questions=16, k=4)
    synthetic(d / "test", questions=8, k=4, seed=1, first_id=100)
    chosen = _chosen(d / "train", d / "cv")
    held = held_out_report(
        read_collection(d / "train"),
        read_collection(d / "test"),
        ChosenStops.load(chosen),
        d / "out",
        resamples=50,
    )
    return d / "train", d / "test", chosen, held


def test_plain_test_reports_the_probed_policies_not_replayable(plain: HeldOut) -> None:
    r = plain.report
    assert (
        r["test"]["probes"] is False
        and "probe_every 320 >= max_tokens 320" in (r["test"]["why_no_probes"])
    )
    assert r["test"]["critique"] is False and r["test"]["questions"] == 4
    rows = {p["policy"]: p for p in r["all"]["policies"]}
    probed = [k for k in rows if k.split("/")[0] in ("dm_sample", "bayes")]
    assert len(probed) == 8  # rounds of 1-4, both policies
    for k in probed:
        assert rows[k]["status"].startswith("not replayable: the test collection has no probes")
        assert "test" not in rows[k]
    free = ["fixed", "adaptive", "beta", "dm_sample_free/r1", "bayes_free/r2"]
    for k in free:
        assert rows[k]["status"] == "replayed" and rows[k]["test"]["n"] == 4
        assert 0 <= rows[k]["test"]["accuracy"] <= 1 and rows[k]["test"]["total_pct"] > 0
    # no judge that needs probes or self-critique; the probe-free ones are there
    judges = {j["judge"] for j in r["all"]["judges"]}
    assert not any("with probes" in j or "critique" in j for j in judges)
    assert "DM without probes, P(correct) at final answers" in judges
    assert r["trained"]["learned_features"] == ["votes", "confidence", "length", "form"]
    text = format_report(r)
    assert "PLAIN: no probes" in text and "not replayable: the test collection has no probes" in (
        text
    )
    # a plain sample is charged one call: fixed@8 costs 8 calls a question
    assert r["all"]["baseline"]["per_question"]["calls"] == 8


def test_plain_copy_is_what_a_plain_collection_records(tmp_path: Path) -> None:
    m, recs = read_collection(plain_copy(FIXTURES / "test", tmp_path / "p"))
    sig = collection_signals(m, recs)
    assert (sig.probes, sig.critique) == (False, False)
    assert collection_signals(*read_collection(FIXTURES / "test")).probes is True
    q = recs[0]
    plain_cost = question_costs(q, 320).drawn(8, None, False)
    probed_cost = question_costs(read_collection(FIXTURES / "test")[1][0], 64)
    assert plain_cost.prompt == pytest.approx(probed_cost.drawn(8, None, False).prompt, abs=0.5)


def test_replayed_numbers_are_replay_at_the_chosen_threshold(synth: Synth) -> None:
    _, test, chosen_path, held = synth
    chosen = ChosenStops.load(chosen_path)
    m, recs = read_collection(test)
    keys = question_keys(recs)
    dm, free = held.trained.dm, held.trained.free
    assert list(free.feature_families) == chosen.free_families
    mt = max_tokens_of(m)
    for policy, judge, probed in (
        ("dm_sample_free/r2", free, False),
        ("dm_sample/r1", dm, True),
        ("bayes_free/r3", free, False),
    ):
        c = next(x for x in chosen.chosen if x.policy == policy)
        assert c.threshold is not None
        r = int(policy[-1])
        pt = held.replayed.points[policy]
        assert pt.param == c.threshold and len(pt.correct) == 8
        for key, q in zip(keys, recs, strict=True):
            sq = score_collection(judge, [q], mt)[0]
            if policy.startswith("bayes"):
                u = bayes(sq, c.threshold, round_size=r)
            else:
                up, after = c.give_up_below, c.give_up_after or 2
                u = dm_sample(sq, judge, c.threshold, r, up, after)
            assert pt.correct[key] == u.correct and pt.drawn[key] == u.stopped_at
            assert pt.cost[key] == question_costs(q, 64).drawn(u.stopped_at, r, probed)
        row = next(p for p in held.report["all"]["policies"] if p["policy"] == policy)
        assert row["test"]["accuracy"] == pytest.approx(sum(pt.correct.values()) / 8)


def test_selective_threshold_is_fixed_on_train(
    synth: Synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ponder.cli import main

    train, test, chosen_path, held = synth
    chosen = ChosenStops.load(chosen_path)
    m, recs = read_collection(train)
    conf = oof_confidences(m, recs, chosen, seed=0)
    assert held.trained.thresholds == {n: threshold_at(v) for n, v in conf.items()}
    assert len(conf) == 2 and len(conf[SHARE]) == 16
    out = tmp_path / "report"
    args = ["drr", "report", "--train", str(train), "--test", str(test), "--chosen"]
    args += [str(chosen_path), "--out", str(out), "--first", "5", "--subset-first", "3"]
    assert main([*args, "--no-plots", "--resamples", "20"]) == 0
    got = capsys.readouterr()
    assert "replayed 5 test questions" in got.err and "# Held-out test report" in got.out
    assert "## The same on the first 3 test questions" in got.out
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["test"]["questions"] == 5 and data["subset"]["questions"] == 3
    assert not (out / "reliability.png").exists() and (out / "learned.json").is_file()
    # another test set (its first 5 questions): the same thresholds, from train alone
    for row, full in zip(data["all"]["selective"], held.report["all"]["selective"], strict=True):
        assert row["threshold"] == full["threshold"] == held.trained.thresholds[row["confidence"]]
        assert row["n"] == 5 and full["n"] == 8
        assert row["test_coverage"] == row["answered"] / 5


def test_probed_test_reports_every_judge_and_a_plot(synth: Synth) -> None:
    *_, held = synth
    r = held.report
    assert r["test"]["probes"] is True and r["trained"]["learned_features"][-1] == "probes"
    rows = {p["policy"]: p for p in r["all"]["policies"]}
    assert all(p["status"] == "replayed" for p in rows.values())
    judges = {j["judge"]: j for j in r["all"]["judges"]}
    assert "sampling DM with probes, P(majority right)" in judges
    assert judges["mean token logprob (untrained)"]["ece"] is None
    assert judges["DM with probes, P(correct) at final answers"]["ece"] is not None
    agg = {a["aggregator"]: a for a in r["all"]["aggregation"]}
    maj, oracle = agg["majority"]["accuracy"], agg["oracle (any sample right)"]["accuracy"]
    assert oracle >= maj and agg["learned aggregator"]["n"] == 8
    assert agg["oracle (any sample right)"]["lost"] == 0
    if agg["oracle (any sample right)"]["gap_closed"] is not None:
        assert agg["oracle (any sample right)"]["gap_closed"] == pytest.approx(1.0)
    pytest.importorskip("matplotlib")
    assert r["plots"] == ["reliability.png"]


def test_cli_errors_name_the_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ponder.cli import main

    synthetic(tmp_path / "train", questions=6, k=4)
    synthetic(tmp_path / "test", questions=4, k=4, first_id=50)
    missing = tmp_path / "cv" / "chosen.json"
    base = ["drr", "report", "--train", str(tmp_path / "train"), "--out", str(tmp_path / "o")]
    assert main([*base, "--test", str(tmp_path / "test"), "--chosen", str(missing)]) == 2
    assert f"--chosen {missing}: no such file" in capsys.readouterr().err
    assert main([*base, "--test", str(tmp_path / "nope"), "--chosen", str(missing)]) == 2
    assert f"--test {tmp_path / 'nope'} is not a directory" in capsys.readouterr().err
    # a test collection of another reasoner is refused before anything is trained
    chosen = tmp_path / "chosen.json"
    stops = ChosenStops(
        train=["t"], questions=6, folds=2, seed=0, margin=0.02, baseline="fixed@4",
        baseline_accuracy=0.5, families=["votes"], free_families=["length"], chosen=[],
    )  # fmt: skip
    chosen.write_text(stops.model_dump_json(), encoding="utf-8")
    m = json.loads((tmp_path / "test" / MANIFEST).read_text(encoding="utf-8"))
    m["model"] = {"name": "other", "sha256": "sha-other"}
    (tmp_path / "test" / MANIFEST).write_text(json.dumps(m), encoding="utf-8")
    assert main([*base, "--test", str(tmp_path / "test"), "--chosen", str(chosen)]) == 2
    assert "another reasoner than train" in capsys.readouterr().err
    assert not (tmp_path / "o" / "dm.json").exists()
    # questions shared with train are refused too
    synthetic(tmp_path / "overlap", questions=4, k=4, first_id=3)
    assert main([*base, "--test", str(tmp_path / "overlap"), "--chosen", str(chosen)]) == 2
    assert "share 3 questions" in capsys.readouterr().err


def test_the_first_test_questions_are_the_datasets_first_whatever_the_collection_order() -> None:
    from ponder.behaviour.records import QuestionRecord

    def rec(i: str) -> QuestionRecord:
        return QuestionRecord(id=i, question="q", gold="1", samples=[])

    finished = [rec("1"), rec("0"), rec("10"), rec("2")]  # as two questions at a time finish
    assert [r.id for r in in_dataset_order(finished)] == ["0", "1", "2", "10"]
    named = [rec("b"), rec("a")]  # ids that are not rows: kept as stored
    assert [r.id for r in in_dataset_order(named)] == ["b", "a"]
    from ponder.behaviour.records import first_in_dataset

    # the dataset's first 2, in the order stored (sidecar chunks follow the collection's order)
    assert [r.id for r in first_in_dataset(finished, 2)] == ["1", "0"]
    assert [r.id for r in first_in_dataset(finished, None)] == ["1", "0", "10", "2"]
