"""Pooling a probed collection with a plain one (``ponder collect --skip ... --probe-every 320
--no-self-critique``): the probed questions are read as the plain collector would have recorded
them (``coarsen``), cross-validation leaves out what needs probes, and the training commands take
both directories. Real records: tests/fixtures/behaviour (train: probed every 64; train-plain)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.behaviour.records import read_collection
from ponder.cli import main
from ponder.errors import InputError
from ponder.learning.drr.coarsen import coarsen
from ponder.learning.drr.costs import prompt_and_cue, question_costs
from ponder.learning.drr.cv import cross_validate
from ponder.learning.drr.folds import pool_collections
from ponder.learning.drr.signals import collection_signals
from tests.unit.drr_helpers import manifest, synthetic

FIXTURES = Path(__file__).parents[1] / "fixtures" / "behaviour"
PROBED, PLAIN = FIXTURES / "train", FIXTURES / "train-plain"


def test_a_coarsened_record_keeps_only_the_coarse_probes_and_costs_one_call_a_sample() -> None:
    _, records = read_collection(PROBED)
    q = records[0]
    assert any(p.at % 320 for s in q.samples for p in s.probes)  # probed every 64
    c = coarsen(q, 64, 320)
    assert all(p.at == 320 for s in c.samples for p in s.probes)
    cut = [s for s in q.samples if any(p.at == 320 for p in s.probes)]
    assert sum(len(s.probes) for s in c.samples) == len(cut)
    assert all(s.critique_p_yes is None for s in c.samples)
    assert "critique" not in c.usage["by_purpose"]
    # the question's prompt is estimated the same from either usage
    before, after = prompt_and_cue(q, 64)[0], prompt_and_cue(c, 320)[0]
    assert before is not None and after == pytest.approx(before, abs=0.5)
    # a sample of at most 320 tokens was one reasoning call
    ok = [s for s in c.samples if not s.error]
    assert c.usage["by_purpose"]["reason"]["calls"] == len(ok)
    plain = question_costs(c, 320).drawn(len(ok), None, probed=False)
    assert plain.calls == len(ok) and plain.completion == sum(s.tokens for s in ok)
    assert q.samples[0].critique_p_yes is not None  # the original is not changed
    with pytest.raises(ValueError, match="multiple"):
        coarsen(q, 64, 100)


def test_coarsened_costs_match_a_real_plain_collection() -> None:
    """Per question and sample, the estimated prompt and reasoning calls of the coarsened probed
    records are those the plain collector recorded on its own questions (same template)."""
    _, probed = read_collection(PROBED)
    _, plain = read_collection(PLAIN)
    p_coarse = [prompt_and_cue(coarsen(q, 64, 320), 320)[0] or 0.0 for q in probed]
    p_plain = [prompt_and_cue(q, 320)[0] or 0.0 for q in plain]
    # the prompt is the system + user turns: ~110 tokens for a GSM8K question either way
    assert all(60 < p < 200 for p in p_coarse + p_plain)
    assert abs(sum(p_coarse) / len(p_coarse) - sum(p_plain) / len(p_plain)) < 30


def test_pooling_reads_the_probed_collection_at_the_plain_interval() -> None:
    probed, plain = read_collection(PROBED), read_collection(PLAIN)
    said: list[str] = []
    m, records, dropped = pool_collections([probed, plain], said.append)
    assert dropped == 0 and len(records) == len(probed[1]) + len(plain[1])
    assert m.settings["probe_every"] == 320 and m.settings["self_critique"] is False
    assert said == [
        "collection 1 (probes every 64) read as probed every 320, without self-critique"
    ]
    assert all(p.at == 320 for q in records for s in q.samples for p in s.probes)
    assert not collection_signals(m, records).probes  # no policy with probes replays on it
    assert records[len(probed[1]) :] == list(plain[1])  # the plain records as they were


def test_probe_intervals_that_do_not_divide_are_refused(tmp_path: Path) -> None:
    m, recs = synthetic(tmp_path / "a", questions=3)
    with pytest.raises(InputError, match="probe_every"):
        pool_collections([(m, recs), (manifest(probe_every=100, k=6), recs)])


def test_cross_validation_without_probes_leaves_out_the_policies_that_need_them(
    tmp_path: Path,
) -> None:
    m, recs = synthetic(tmp_path / "a", questions=12)
    _, more = synthetic(tmp_path / "b", questions=12, seed=1, first_id=12)
    plain = manifest(probe_every=320, k=6)
    pm, pooled, _ = pool_collections([(m, recs), (plain, [coarsen(q, 64, 320) for q in more])])
    said: list[str] = []
    run = cross_validate(pm, pooled, folds=3, progress=said.append)
    names = {p.policy for p in run.points}
    assert "dm_sample_free" in names and "bayes_free" in names and "fixed" in names
    assert not names & {"dm_sample", "bayes"}
    scored = {j.name for j in run.judges if j.y}
    assert "DM without probes, P(correct) at final answers" in scored
    assert not any("with probes" in n for n in scored)
    assert run.families == ["votes", "confidence", "length"]  # what the report's DM will use
    assert said[0].startswith("no probes (probe_every 320 >= max_tokens 320)")


def test_drr_and_aggregate_train_take_several_collections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "dm.json"
    args = ["drr", "train", "--data", str(PROBED), "--data", str(PLAIN), "--no-probes"]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr()
    assert "trained DM on 12 questions of" in text.out and str(PLAIN) in text.out
    assert "read as probed every 320" in text.err
    art = json.loads(out.read_text())
    assert art["train"]["questions"] == 12 and art["manifest"]["settings"]["probe_every"] == 320
    agg = tmp_path / "agg.json"
    args = ["aggregate", "train", "--collection", str(PROBED), "--collection", str(PLAIN)]
    assert main([*args, "--features", "live", "--out", str(agg)]) == 0
    assert "trained on 12 questions" in capsys.readouterr().out
    assert json.loads(agg.read_text())["training"]["questions"] == 12


def test_cv_then_report_on_a_probed_plus_plain_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The whole held-out path on the pooled train: ``drr cv`` chooses only what replays without
    probes, ``drr report`` trains on both directories and replays a plain test."""
    from tests.unit.test_drr_report import plain_copy

    test = plain_copy(FIXTURES / "test", tmp_path / "test")
    train = ["--train", str(PROBED), "--train", str(PLAIN)]
    cv = tmp_path / "cv"
    args = ["drr", "cv", *train, "--folds", "2", "--margin", "1", "--resamples", "20"]
    assert main([*args, "--out", str(cv)]) == 0
    err = capsys.readouterr().err
    assert "(12 questions), seed 0" in err and "with probes are left out" in err
    chosen = json.loads((cv / "chosen.json").read_text())
    picked = json.dumps(chosen)
    assert "dm_sample_free" in picked and '"dm_sample/' not in picked and '"bayes/' not in picked
    out = tmp_path / "report"
    args = ["drr", "report", *train, "--test", str(test), "--chosen", str(cv / "chosen.json")]
    assert main([*args, "--out", str(out), "--no-plots", "--resamples", "20"]) == 0
    capsys.readouterr()
    data = json.loads((out / "report.json").read_text())
    assert data["test"]["questions"] == 4
    rows = {p["policy"]: p for p in data["all"]["policies"]}
    assert any(
        k.startswith("dm_sample_free") and r["status"] == "replayed" for k, r in rows.items()
    )
    assert json.loads((out / "dm-free.json").read_text())["train"]["questions"] == 12
