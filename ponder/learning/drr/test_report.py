"""The held-out test report: every knob fixed on train, the test questions only report (issue 30).

Use it once ``ponder drr cv`` has chosen each stop policy's threshold on the train questions
(``chosen.json``), to put numbers on a test collection that no choice looked at::

    ponder drr report --train data/behaviour/gsm8k-train-qwen05 --test DIR \\
        --chosen results/drr-cv/chosen.json --out results/drr-report [--subset-first 100]

(in Python: ``train_all`` then ``replay_test``, or ``held_out_report`` for both and the tables;
``write_report`` for the files). ``ponder drr evaluate`` sweeps every threshold grid on the test
questions: a picture, not a claim. Here nothing is chosen on test:

- the DM with probes and the probe-free DM (``train_dm``, with the families ``chosen.json``
  names) and the learned aggregator (``train_artifact``) are trained on ALL the train questions,
  as ``cv`` trains them on each fold's other folds;
- each chosen policy is replayed at its chosen threshold and futility stop only, with
  ``cv.policies`` and ``costs.question_costs`` (so its numbers are computed as in CV), against
  maj@k on the same questions;
- selective answering abstains below the confidence that answers 80% of the train questions,
  their confidences out-of-fold (the probe-free DM trained per fold, in ``chosen.json``'s folds).

A PLAIN test collection (collected with ``--probe-every`` = ``--max-tokens`` and
``--no-self-critique``) has no probes. The policies and judges that need them (``dm_sample/…``,
``bayes/…``, the DM with probes) are then reported as not replayable: ``score_collection`` would
score a plain trace with the probed DM without complaint, but without its probe answers, so its
P's would be silently wrong. The learned aggregator is then trained on the ``live`` features.
The tables are ``test_report_tables``'s, the markdown ``test_report_markdown``'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ponder.aggregator.learned import LearnedAggregator
from ponder.behaviour.outcomes import sample_outcomes
from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.errors import AllSamplesFailed, ConfigError, InputError
from ponder.grading import is_equivalent
from ponder.learning.drr.compare import judge_vote
from ponder.learning.drr.costs import question_costs
from ponder.learning.drr.cv import (
    JUDGES,
    JudgeScores,
    Point,
    Spec,
    judge_question,
    policies,
    question_keys,
)
from ponder.learning.drr.cv_choice import Chosen, ChosenStops
from ponder.learning.drr.folds import question_folds
from ponder.learning.drr.replay import ScoredQuestion, fixed, score_collection
from ponder.learning.drr.signals import Signals, collection_signals
from ponder.learning.drr.train import max_tokens_of, train_dm
from ponder.learning.learned.train import train_artifact
from ponder.protocol.actions import Task
from ponder.stopping.features import votes
from ponder.stopping.model import DM

PROBED = ("dm_sample", "bayes")
"""Policies (before ``/rR``) that judge probed traces: not replayable on a plain collection."""
COVERAGE = 0.8
SAMPLING_FREE = JUDGES[3]  # "sampling DM without probes, P(majority right)"
SHARE = "vote share (majority's share of the k samples)"
JUDGE_VOTE = "judge-weighted (probe-free DM)"
LEARNED = "learned aggregator"
ORACLE = "oracle (any sample right)"
Progress = Callable[[str], None]


def check_collections(
    train: tuple[Manifest, Sequence[QuestionRecord]],
    test: tuple[Manifest, Sequence[QuestionRecord]],
    allow_other_reasoner: bool = False,
) -> None:
    """Refuse a test collection of another reasoner, one sharing questions with train, or none."""
    (tm, tr), (sm, sr) = train, test
    if not sr:
        raise InputError("the test collection holds no question records yet")
    if not allow_other_reasoner and not tm.same_reasoner(sm):
        diffs = "; ".join(tm.reasoner_differences(sm, ("train", "test")))
        raise InputError(
            f"the test collection comes from another reasoner than train: {diffs} "
            "(--allow-other-reasoner to report anyway)"
        )
    shared = {q.id for q in tr} & {q.id for q in sr}
    if tm.dataset.sha256 == sm.dataset.sha256 and shared:
        raise InputError(
            f"train and test share {len(shared)} questions of one dataset (e.g. id "
            f"{sorted(shared)[0]}): split by question"
        )


@dataclass
class Trained:
    """Everything fixed on train: the two DMs, the learned aggregator, the abstention
    thresholds (confidence name -> threshold), the train coverage each gives and what train
    confidences it was set on (``selective_source``)."""

    dm: DM
    free: DM
    learned: Path
    learned_families: list[str]
    thresholds: dict[str, float]
    train_coverage: dict[str, float]
    selective_source: dict[str, str]


def confidences(free: DM, sq: ScoredQuestion) -> dict[str, float]:
    """Selective answering's confidences in maj@k's answer over all the question's samples."""
    answers = [t.sample.answer for t in sq.traces]
    groups = votes(answers)
    top = max((len(g.members) for g in groups), default=0)
    out = {SHARE: top / len(answers)}
    if free.sampling is not None:
        out[SAMPLING_FREE] = free.p_majority(answers, [t.p[-1] for t in sq.traces])
    return out


def threshold_at(values: Sequence[float], coverage: float = COVERAGE) -> float:
    """The confidence at which answering ``>=`` it covers ``coverage`` of ``values`` (the
    ``round(coverage * n)``-th highest, as ``stats.risk_coverage`` counts)."""
    ranked = np.sort(np.asarray(values, dtype=float))[::-1]
    return float(ranked[max(1, round(coverage * len(ranked))) - 1])


def oof_confidences(
    manifest: Manifest,
    records: Sequence[QuestionRecord],
    chosen: ChosenStops,
    seed: int,
    progress: Progress | None = None,
) -> dict[str, list[float]]:
    """Each train question's confidences from a probe-free DM trained on the other folds."""
    fold = question_folds(len(records), chosen.folds, chosen.seed)
    mt = max_tokens_of(manifest)
    out: dict[str, list[float]] = {}
    for f in range(max(fold) + 1):
        train = [q for q, g in zip(records, fold, strict=True) if g != f]
        free = train_dm(manifest, train, seed, families=chosen.free_families, probes=False)
        for q, g in zip(records, fold, strict=True):
            for sq in score_collection(free, [q], mt) if g == f else ():
                for name, v in confidences(free, sq).items():
                    out.setdefault(name, []).append(v)
        if progress is not None:
            progress(f"selective answering: out-of-fold confidences, fold {f + 1}/{max(fold) + 1}")
    return out


def train_all(
    manifest: Manifest,
    records: Sequence[QuestionRecord],
    chosen: ChosenStops,
    out: str | Path,
    *,
    learned_features: str,
    seed: int | None = None,
    coverage: float = COVERAGE,
    progress: Progress | None = None,
) -> Trained:
    """Train both DMs and the learned aggregator on every train question (saved into ``out``:
    ``dm.json``, ``dm-free.json``, ``learned.json``) and fix the abstention thresholds."""
    say = progress or (lambda _: None)
    seed = chosen.seed if seed is None else seed
    d = Path(out).expanduser()
    dm = train_dm(manifest, records, seed, families=chosen.families)
    dm.save(d / "dm.json")
    say(f"trained the DM with probes ({', '.join(dm.feature_families)}) on {len(records)} q")
    free = train_dm(manifest, records, seed, families=chosen.free_families, probes=False)
    free.save(d / "dm-free.json")
    say(f"trained the probe-free DM ({', '.join(free.feature_families)})")
    art = train_artifact(manifest, records, learned_features)
    path = art.save(d / "learned.json")
    say(f"trained the learned aggregator ({', '.join(art.families)})")
    conf = oof_confidences(manifest, records, chosen, seed, say)
    thresholds = {name: threshold_at(v, coverage) for name, v in conf.items()}
    cov = {n: float(np.mean(np.asarray(v) >= thresholds[n])) for n, v in conf.items()}
    source = {n: f"on train, out-of-fold ({chosen.folds} folds)" for n in conf}
    source[SHARE] = "on train (nothing fitted)"
    return Trained(dm, free, path, list(art.families), thresholds, cov, source)


@dataclass
class Replayed:
    """Per test question: each chosen policy's point, the judges' scores, each aggregator's
    correctness and the selective confidences (``test_report_tables`` summarizes a subset)."""

    questions: list[str]
    k: int
    base: Point
    points: dict[str, Point] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    judges: list[JudgeScores] = field(default_factory=list)
    aggregated: dict[str, dict[str, bool]] = field(default_factory=dict)
    aggregator_notes: dict[str, str] = field(default_factory=dict)
    confidence: dict[str, dict[str, float]] = field(default_factory=dict)


def _key(spec: Spec) -> str:
    return spec[0] if spec[1] is None else f"{spec[0]}/r{spec[1]}"


def find_spec(specs: Sequence[Spec], c: Chosen) -> Spec | None:
    """The replay of ``c``'s policy at its chosen threshold and futility stop, if on the grid."""
    g = None if c.give_up_below is None else (c.give_up_below, c.give_up_after)
    for s in specs:
        if (
            _key(s) == c.policy
            and c.threshold is not None
            and math.isclose(s[2], c.threshold)
            and s[3] == g
        ):
            return s
    return None


def _skip_reason(c: Chosen, signals: Signals, probe_every: tuple[int, int], k: int) -> str:
    if c.threshold is None:
        return "no threshold came within the margin on train: nothing to report"
    if c.policy.split("/")[0] in PROBED:
        if not signals.probes:
            return f"not replayable: the test collection has no probes ({signals.why})"
        if probe_every[0] != probe_every[1]:
            return (
                f"not replayable: the test probes every {probe_every[1]} tokens, train every "
                f"{probe_every[0]}"
            )
    if c.policy == "fixed" and c.threshold > k:
        return f"not replayable: the test collection has k = {k} samples"
    return ""


def _not_found(c: Chosen, trained: Trained) -> str:
    judge = {"dm_sample": trained.dm, "dm_sample_free": trained.free}.get(c.policy.split("/")[0])
    if judge is not None and judge.sampling is None:
        return "not replayable: the DM trained on train has no sampling scorer"
    return "not replayable: its setting is not on cv's grid (cv.policies)"


def replay_test(
    trained: Trained,
    chosen: ChosenStops,
    manifest: Manifest,
    records: Sequence[QuestionRecord],
    *,
    train_probe_every: int,
    allow_other_reasoner: bool = False,
) -> Replayed:
    """Score the test collection and replay each chosen policy, the judges, the aggregators and
    the selective confidences on it (module doc)."""
    sig = collection_signals(manifest, records)
    mt = max_tokens_of(manifest)
    every = int(manifest.settings.get("probe_every", 64))
    scored: list[tuple[str, QuestionRecord, ScoredQuestion | None, ScoredQuestion]] = []
    for key, q in zip(question_keys(records), records, strict=True):
        free = score_collection(trained.free, [q], mt)
        if not free:
            continue  # every sample failed: nothing to replay (as in cv)
        sp = score_collection(trained.dm, [q], mt)[0] if sig.probes else None
        scored.append((key, q, sp, free[0]))
    k = max((len(sf.traces) for *_, sf in scored), default=0)
    specs = policies(trained.dm, trained.free, k)
    base_spec = next(s for s in specs if s[0] == "fixed" and s[2] == float(k))
    rep = Replayed([key for key, *_ in scored], k, Point("fixed", None, float(k)))
    wanted: list[tuple[Spec, Point]] = [(base_spec, rep.base)]
    for c in chosen.chosen:
        why = _skip_reason(c, sig, (train_probe_every, every), k)
        spec = None if why else find_spec(specs, c)
        if spec is None:
            rep.skipped[c.policy] = why or _not_found(c, trained)
            continue
        rep.points[c.policy] = Point(spec[0], spec[1], spec[2], spec[3])
        wanted.append((spec, rep.points[c.policy]))
    judges = {n: JudgeScores(n) for n in JUDGES}
    agg = LearnedAggregator(
        artifact=str(trained.learned), allow_other_reasoner=allow_other_reasoner
    )
    for key, q, sp, sf in scored:
        costs = question_costs(q, every)
        for (*_, run), pt in wanted:
            u, cost = run(sp or sf, sf, costs)
            pt.correct[key], pt.cost[key], pt.drawn[key] = u.correct, cost, u.stopped_at
        # the same judge rows as cv; without probes the probed DM's rows are dropped below
        judge_question(
            judges, key, q, sp or sf, sf, trained.dm if sp else trained.free, trained.free
        )
        _aggregate(rep, key, q, sf, agg, manifest)
        for name, v in confidences(trained.free, sf).items():
            rep.confidence.setdefault(name, {})[key] = v
    rep.judges = [j for j in judges.values() if j.y and (sig.probes or "with probes" not in j.name)]
    return rep


def _aggregate(
    rep: Replayed,
    key: str,
    q: QuestionRecord,
    sf: ScoredQuestion,
    agg: LearnedAggregator,
    manifest: Manifest,
) -> None:
    a = rep.aggregated
    a.setdefault("majority", {})[key] = fixed(sf, len(sf.traces)).correct
    a.setdefault(JUDGE_VOTE, {})[key] = judge_vote(sf).correct
    if LEARNED not in rep.aggregator_notes:
        try:
            pick = agg.choose(Task(question=q.question), sample_outcomes(q, manifest)).answer
            a.setdefault(LEARNED, {})[key] = is_equivalent(pick, q.gold)
        except AllSamplesFailed:
            a.setdefault(LEARNED, {})[key] = False
        except ConfigError as exc:  # e.g. the test's confidences are not the train's kind
            rep.aggregator_notes[LEARNED] = f"not applicable: {exc}"
            a.pop(LEARNED, None)
    a.setdefault(ORACLE, {})[key] = any(t.sample.correct for t in sf.traces)


def write_report(out: str | Path, report: dict[str, Any], markdown: str) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.md`` into ``out``."""
    d = Path(out).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    js, md = d / "report.json", d / "report.md"
    js.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md.write_text(markdown + "\n", encoding="utf-8")
    return js, md


__all__ = [
    "COVERAGE",
    "JUDGE_VOTE",
    "LEARNED",
    "ORACLE",
    "PROBED",
    "SHARE",
    "Replayed",
    "Signals",
    "Trained",
    "check_collections",
    "collection_signals",
    "confidences",
    "find_spec",
    "oof_confidences",
    "replay_test",
    "threshold_at",
    "train_all",
    "write_report",
]
