"""The stop-thinking report: fixed budgets, Dynasor and the DM's stop-thinking replayed on a
thinking-format test collection, knobs chosen on train only; the thinking feature family."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest

from ponder.behaviour.records import (
    MANIFEST,
    RECORDS,
    DatasetInfo,
    Manifest,
    ModelInfo,
    ProbeRecord,
    QuestionRecord,
    SampleRecord,
)
from ponder.cli import main
from ponder.errors import InputError
from ponder.learning.drr.replay import ScoredTrace
from ponder.learning.drr.states import trace_states
from ponder.learning.drr.think_report import (
    budget_stop,
    check_pair,
    choose,
    full_stop,
    think_report,
    write_report,
)
from ponder.learning.drr.train import resolve_dm_families, train_dm
from ponder.prompts.loader import template_hash
from ponder.stopping.features import (
    CHECKPOINT_FEATURES,
    THINKING_FEATURES,
    CheckpointState,
    checkpoint_feature_names,
    checkpoint_features,
)
from ponder.stopping.model import DM

CAP, EVERY = 1024, 64
THINKING = {
    "answer_tokens": 256,
    "template": "think_first_system",
    "markers": ["<think>", "</think>"],
}
TEMPLATES = ("cot_system", "cot_user", "probe_cue", "self_critique_user", "think_first_system")


def manifest(thinking: bool = True, data: str = "d.jsonl") -> Manifest:
    names = TEMPLATES if thinking else TEMPLATES[:-1]
    settings = {"k": 2, "max_tokens": CAP, "probe_every": EVERY, "probe_max_tokens": 12}
    if thinking:
        settings["thinking"] = THINKING
    return Manifest(
        model=ModelInfo(name="m", sha256="sha-m"),
        templates={n: template_hash(n) for n in names},
        settings=settings,
        seed=0,
        dataset=DatasetInfo(path=data, sha256=f"sha-{data}", rows=100),
    )


def thinking_sample(
    answers: list[str | None], final: str | None, gold: str, thinking: int, lp: float = -0.2
) -> SampleRecord:
    """A thinking-format trace: probes at every 64 thinking tokens (and at the cap, if cut)."""
    cut = thinking >= CAP
    probes = [
        ProbeRecord(at=at, answer=a, correct=a == gold, tokens=3, thinking_tokens=at)
        for at, a in zip(range(EVERY, thinking + 1, EVERY), answers, strict=False)
    ]
    tokens = thinking + 10
    return SampleRecord(
        seed=0,
        text=f"\\boxed{{{final}}}",
        answer=final,
        correct=final == gold,
        finish_reason="stop",
        tokens=tokens,
        lp=[lp] * tokens,
        conf=[-2 * lp] * tokens,
        probes=probes,
        thinking="t",
        thinking_tokens=thinking,
        thinking_cut=cut,
    )


def collection(questions: int, seed: int, first: int = 0) -> list[QuestionRecord]:
    """Right traces settle on the gold answer by 192 thinking tokens and think on; wrong ones
    wander. Some think to the cap."""
    rng = random.Random(seed)
    out = []
    for qi in range(first, first + questions):
        gold = str(100 + qi)
        samples = []
        for _ in range(2):
            good = rng.random() < 0.6
            thinking = rng.choice([320, 512, 700, CAP])
            n = thinking // EVERY
            answers: list[str | None] = [
                gold if good and i >= 2 else str(rng.randint(0, 9)) for i in range(n)
            ]
            final = gold if good else str(rng.randint(0, 9))
            samples.append(thinking_sample(answers, final, gold, thinking, -0.1 if good else -0.6))
        out.append(QuestionRecord(id=str(qi), question="q", gold=gold, samples=samples))
    return out


def write(out: Path, m: Manifest, recs: list[QuestionRecord]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).write_text(m.model_dump_json(), encoding="utf-8")
    (out / RECORDS).write_text("".join(r.model_dump_json() + "\n" for r in recs), encoding="utf-8")
    return out


def _scored(s: SampleRecord) -> ScoredTrace:
    states = trace_states(s, CAP)
    return ScoredTrace(s, states, [0.5] * len(states))


# -- the thinking feature family --------------------------------------------------------------


def test_the_thinking_family_reads_length_and_stability() -> None:
    st = CheckpointState(128, ("3", "5", "5", "5"), [-0.1] * 128, [1.0] * 128, False, False, CAP)
    names = checkpoint_feature_names(("votes", "thinking"))
    assert names[-4:] == list(THINKING_FEATURES)
    got = dict(zip(names, checkpoint_features(st, ("votes", "thinking")), strict=True))
    assert got["think_tokens_log"] == pytest.approx(math.log1p(128))
    assert got["answer_flips"] == 1 and got["flip_share"] == pytest.approx(1 / 3)
    assert got["stable_share"] == pytest.approx(3 / 4)
    quiet = CheckpointState(64, (None, None, "4"), [], [], False, False, CAP)
    q = checkpoint_features(quiet, ("thinking",))
    assert q[1:] == [1.0, 0.5, pytest.approx(1 / 3)]  # no answer twice is not a change of mind
    # the base list (every artifact made before the family) is unchanged
    assert len(checkpoint_features(st)) == len(CHECKPOINT_FEATURES) == 19


def test_the_thinking_family_is_chosen_only_by_name() -> None:
    assert resolve_dm_families("base,thinking") == ("votes", "confidence", "length", "thinking")
    assert "thinking" not in resolve_dm_families("all")
    with pytest.raises(InputError, match="valid: base, all, votes, confidence, length, thinking"):
        resolve_dm_families("thoughts")


def test_a_dm_with_the_thinking_family_round_trips_and_knows_its_format(tmp_path: Path) -> None:
    dm = train_dm(manifest(), collection(12, seed=1), families="base,thinking", sampling=False)
    assert dm.checkpoint.features[-4:] == list(THINKING_FEATURES)
    again = DM.load(dm.save(tmp_path / "dm.json"))
    st = trace_states(collection(1, seed=2)[0].samples[0], CAP)[0].state
    assert again.p_checkpoint(st) == pytest.approx(dm.p_checkpoint(st))
    dm.check_reasoner(manifest())
    with pytest.raises(Exception, match="think_first_system"):  # a plain collection is refused
        dm.check_reasoner(manifest(thinking=False))
    plain = train_dm(manifest(thinking=False), collection(12, seed=1), sampling=False)
    with pytest.raises(Exception, match="think_first_system"):  # and the other way round
        plain.check_reasoner(manifest())


# -- the policies ------------------------------------------------------------------------------


def test_a_budget_answers_with_the_probe_at_the_budget() -> None:
    s = thinking_sample(["1", "2", "3", "4", "5"], "9", "9", 320)
    t = _scored(s)
    at = budget_stop(t, 256)
    assert (at.correct, at.thinking, at.generated) == (False, 256, 256 + 3)
    assert budget_stop(t, 512) == full_stop(t) and full_stop(t).thinking == 320
    assert budget_stop(t, 32).correct is False  # no probe yet: no answer
    right = _scored(thinking_sample(["1", "2", "3", "9"], "9", "9", 320))
    assert budget_stop(right, 256).correct is True


def test_the_cheapest_knob_within_the_margin_is_chosen() -> None:
    settle = [_scored(thinking_sample(["9"] * 10, "9", "9", 700)) for _ in range(4)]
    choice = choose("dynasor", settle, 1.0, 0.05)
    assert choice.knob == 2 and choice.within_margin
    # budgets: right from the probe at 64 on, so the smallest budget is within the margin
    assert choose("budget", settle, 1.0, 0.05, [512, 64, 256]).knob == 64
    late = [_scored(thinking_sample(["1"] * 4 + ["9"] * 6, "9", "9", 700)) for _ in range(2)]
    assert choose("budget", late, 1.0, 0.05, [128, 512]).knob == 512  # 128 answers "1"
    assert [c.thinking for c in choice.candidates] == [128, 192, 256, 320, 384]
    early = [_scored(thinking_sample(["1"] * 10, "9", "9", 700)) for _ in range(2)]
    fallback = choose("dynasor", early, 1.0, 0.05)  # every m stops on the wrong early answer
    assert not fallback.within_margin and fallback.knob == 6  # the most accurate, most thinking


# -- the report --------------------------------------------------------------------------------


def test_the_report_picks_knobs_on_train_and_reports_test(tmp_path: Path) -> None:
    train = (manifest(), collection(30, seed=3))
    test = (manifest(), collection(12, seed=4, first=100))
    rep = think_report(train, test, margin=0.05, folds=3, resamples=300)
    names = [r.policy for r in rep.rows]
    assert names[:3] == ["full", "budget@256", "budget@512"]
    assert names[3].startswith("dynasor@") and names[4].startswith("dm_think@")
    full, b256 = rep.rows[0], rep.rows[1]
    assert full.thinking_saved == 0 and full.won == full.lost == 0 and full.diff == 0
    assert b256.thinking <= 256 and b256.thinking_saved > 0
    for r in rep.rows:
        assert r.ci95[0] <= r.accuracy <= r.ci95[1]
        assert r.diff_ci95[0] <= r.diff <= r.diff_ci95[1] + 1e-12
        assert r.non_inferior == (r.diff_ci95[0] > -0.05)
    # the knobs come from train alone: another test collection changes nothing chosen
    other = think_report(train, (manifest(), collection(8, seed=9, first=200)), folds=3)
    assert [c.knob for c in other.choices] == [c.knob for c in rep.choices]
    md, js = write_report(rep, tmp_path / "r")
    text = md.read_text()
    assert text.index("Non-inferiority margin: 0.05") < text.index("## Test")
    assert "approximates forcing at B" in text
    data = json.loads(js.read_text())
    assert data["margin"] == 0.05 and len(data["test_rows"]) == 5
    assert data["chosen_on_train"][0]["policy"] == "dynasor"
    # the fixed budget is chosen on train too: the cheapest of the grid within the margin
    [budget] = [c for c in rep.choices if c.policy == "budget"]
    assert [c.knob for c in budget.candidates] == [256, 512]
    ok = [c for c in budget.candidates if c.within]
    assert budget.within_margin == bool(ok)
    if ok:
        assert budget.knob == min(ok, key=lambda c: c.thinking).knob
    assert "| budget |" in text


def test_a_mismatched_pair_is_refused() -> None:
    recs = collection(4, seed=5)
    with pytest.raises(InputError, match="share questions"):
        check_pair((manifest(), recs), (manifest(), recs))
    plain = manifest(thinking=False, data="other.jsonl")
    with pytest.raises(InputError, match="thinking"):
        check_pair((manifest(), recs), (plain, collection(4, seed=5, first=50)))


def test_the_cli_writes_the_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    train = write(tmp_path / "train", manifest(), collection(20, seed=6))
    test = write(tmp_path / "test", manifest(), collection(6, seed=7, first=100))
    out = tmp_path / "rep"
    argv = ["drr", "think-report", "--train", str(train), "--test", str(test)]
    argv += ["--out", str(out), "--margin", "0.1", "--folds", "2", "--resamples", "200"]
    assert main(argv) == 0
    assert "Non-inferiority margin: 0.1" in capsys.readouterr().out
    assert (out / "think_report.md").is_file() and (out / "think_report.json").is_file()
