"""The held-out test report's numbers, on all its test questions or on the first N of them.

Use ``held_out_report(train, test, chosen, out)`` for the whole report (``ponder drr report``:
trains on train, replays the test collection, returns the JSON-ready numbers; the markdown is
``test_report_markdown.format_report``'s), or ``tables(rep, chosen, trained, questions)`` for
the tables on a set of the replayed questions (``test_report.replay_test``). Each table carries
its issue-30 goal check:

- a stop policy: accuracy not below maj@k's by more than ``chosen.json``'s margin AND total
  tokens <= 40% of maj@k's;
- a judge: AUROC >= 0.85 with ECE <= 0.05 (calibrated judges only);
- an aggregator: closes >= 1/2 of the majority -> oracle gap, McNemar p < 0.05 against majority;
- selective answering: accuracy on the answered questions >= full-coverage accuracy + 6 points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ponder.behaviour.records import Manifest, QuestionRecord, in_dataset_order
from ponder.behaviour.stats import auroc_ci, ece, paired, risk_coverage, wilson
from ponder.learning.drr.cv import Point
from ponder.learning.drr.cv_choice import CALIBRATED, ChosenStops, summarize
from ponder.learning.drr.cv_markdown import GOAL_TOKENS
from ponder.learning.drr.evaluate import plot_reliability as reliability_diagram
from ponder.learning.drr.test_report import (
    COVERAGE,
    ORACLE,
    Progress,
    Replayed,
    Trained,
    check_collections,
    collection_signals,
    replay_test,
    train_all,
)
from ponder.learning.drr.train import max_tokens_of

FORMAT = "ponder.drr-report/1"
GOAL_AUROC = 0.85
GOAL_ECE = 0.05
GOAL_GAP = 0.5
GOAL_P = 0.05
GOAL_SELECTIVE = 0.06
Collection = tuple[Manifest, Sequence[QuestionRecord]]


def _only(pt: Point, qs: Sequence[str]) -> Point:
    return Point(
        pt.policy,
        pt.round_size,
        pt.param,
        pt.give_up,
        {q: pt.correct[q] for q in qs if q in pt.correct},
        {q: pt.cost[q] for q in qs if q in pt.cost},
        {q: pt.drawn[q] for q in qs if q in pt.drawn},
    )


def policy_rows(
    rep: Replayed, chosen: ChosenStops, qs: Sequence[str]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """maj@k's numbers, and each chosen policy's at its chosen threshold (or why none)."""
    base = _only(rep.base, qs)
    b = summarize(base, base)
    rows = []
    for c in chosen.chosen:
        row: dict[str, Any] = {
            "policy": c.policy,
            "threshold": c.threshold,
            "give_up_below": c.give_up_below,
            "give_up_after": c.give_up_after,
            "cv": {"accuracy": c.accuracy, "total_pct": c.total_pct, "won": c.won, "lost": c.lost},
        }
        if c.policy not in rep.points:
            rows.append({**row, "status": rep.skipped.get(c.policy, "not replayed")})
            continue
        s = summarize(_only(rep.points[c.policy], qs), base)
        acc_ok = s["accuracy"] >= b["accuracy"] - chosen.margin - 1e-9
        tok_ok = s["total_pct"] is not None and s["total_pct"] <= GOAL_TOKENS
        goal = {"accuracy_ok": acc_ok, "tokens_ok": tok_ok, "met": acc_ok and tok_ok}
        rows.append({**row, "status": "replayed", "test": s, "goal": goal})
    return b, rows


def judge_rows(rep: Replayed, qs: Sequence[str], resamples: int, seed: int) -> list[dict[str, Any]]:
    """Each judge's AUROC (95% CI, a bootstrap over questions) and ECE on the test questions."""
    keep = set(qs)
    rows = []
    for j in rep.judges:
        idx = [i for i, g in enumerate(j.groups) if g in keep]
        if not idx:
            continue
        y, p = [j.y[i] for i in idx], [j.p[i] for i in idx]
        ci = auroc_ci(y, p, [j.groups[i] for i in idx], resamples=resamples, seed=seed)
        e = ece(y, p) if j.name.startswith(CALIBRATED) else None
        met = None
        if e is not None and ci.auroc is not None:
            met = ci.auroc >= GOAL_AUROC and e <= GOAL_ECE
        rows.append(
            {
                "judge": j.name,
                "units": len(y),
                "questions": len({j.groups[i] for i in idx}),
                "auroc": ci.auroc,
                "lo": ci.lo,
                "hi": ci.hi,
                "text": ci.text(),
                "ece": e,
                "goal_met": met,
            }
        )
    return rows


def _acc(d: dict[str, bool]) -> float:
    return sum(d.values()) / len(d) if d else 0.0


def aggregation_rows(rep: Replayed, qs: Sequence[str]) -> list[dict[str, Any]]:
    """Each aggregator over all k samples against majority: accuracy, paired test, gap closed."""
    sub = {n: {q: d[q] for q in qs if q in d} for n, d in rep.aggregated.items()}
    maj = sub.get("majority", {})
    gap = _acc(sub.get(ORACLE, {})) - _acc(maj)
    rows = []
    for name, d in sub.items():
        lo, hi = wilson(sum(d.values()), len(d))
        pr = paired(d, maj)
        closed = (_acc(d) - _acc(maj)) / gap if gap > 0 else None
        met = None  # also when majority already is the oracle: no gap to close
        if name not in ("majority", ORACLE) and closed is not None:
            met = closed >= GOAL_GAP and pr.p_value < GOAL_P
        rows.append(
            {
                "aggregator": name,
                "n": len(d),
                "accuracy": _acc(d),
                "interval": (lo, hi),
                "won": pr.won,
                "lost": pr.lost,
                "p_value": pr.p_value,
                "gap_closed": closed,
                "goal_met": met,
            }
        )
    for name, why in rep.aggregator_notes.items():
        rows.append({"aggregator": name, "status": why})
    return rows


def selective_rows(rep: Replayed, trained: Trained, qs: Sequence[str]) -> list[dict[str, Any]]:
    """maj@k's answer, answered only at or above the threshold fixed on train."""
    correct = [rep.base.correct[q] for q in qs if q in rep.base.correct]
    full = sum(correct) / len(correct) if correct else 0.0
    rows = []
    for name, thr in trained.thresholds.items():
        conf = [rep.confidence[name][q] for q in qs if q in rep.base.correct]
        answered = [y for y, v in zip(correct, conf, strict=True) if v >= thr]
        acc = sum(answered) / len(answered) if answered else None
        at = risk_coverage(correct, conf, (COVERAGE,))[0] if correct else None
        rows.append(
            {
                "confidence": name,
                "threshold": thr,
                "threshold_from": trained.selective_source[name],
                "train_coverage": trained.train_coverage[name],
                "test_coverage": len(answered) / len(correct) if correct else 0.0,
                "answered": len(answered),
                "n": len(correct),
                "accuracy": acc,
                "interval": wilson(sum(answered), len(answered)),
                "full_accuracy": full,
                "gain": None if acc is None else acc - full,
                "goal_met": acc is not None and acc - full >= GOAL_SELECTIVE - 1e-9,
                "accuracy_at_test_coverage": None if at is None else at.accuracy,
                "answered_at_test_coverage": None if at is None else at.answered,
            }
        )
    return rows


def tables(
    rep: Replayed,
    chosen: ChosenStops,
    trained: Trained,
    qs: Sequence[str],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Every table of the report on the questions ``qs`` (keys of ``rep.questions``)."""
    base, policies = policy_rows(rep, chosen, qs)
    return {
        "questions": len(qs),
        "baseline": {"label": rep.base.label, **base},
        "policies": policies,
        "judges": judge_rows(rep, qs, resamples, seed),
        "aggregation": aggregation_rows(rep, qs),
        "selective": selective_rows(rep, trained, qs),
    }


def plot_reliability(rep: Replayed, path: Path) -> None:
    """Reliability diagram of the calibrated judges on every test question."""
    curves = {j.name: (j.y, j.p) for j in rep.judges if j.name.startswith(CALIBRATED)}
    reliability_diagram(
        curves,
        path,
        title="Reliability on the held-out test questions",
        labels=("predicted P", "observed frequency"),
        size=5.5,
        fontsize=7,
    )


@dataclass
class HeldOut:
    """The report's numbers (``report``, JSON-ready) and what they were computed from."""

    report: dict[str, Any]
    replayed: Replayed
    trained: Trained


def held_out_report(
    train: Collection,
    test: Collection,
    chosen: ChosenStops,
    out: str | Path,
    *,
    names: tuple[Sequence[str], str, str] = ((), "", ""),
    first: int | None = None,
    subset_first: int | None = None,
    seed: int | None = None,
    resamples: int = 1000,
    learned_features: str = "auto",
    plots: bool = True,
    allow_other_reasoner: bool = False,
    progress: Progress | None = None,
) -> HeldOut:
    """Train on ``train``, replay ``test`` (its first ``first`` questions in dataset order,
    ``in_dataset_order``), every table on all of them and on the first ``subset_first``;
    ``names``: the train dirs, the test dir and the chosen.json path, for the header. Saves the
    trained artifacts and the plot into ``out``."""
    say = progress or (lambda _: None)
    ordered = in_dataset_order(list(test[1]))
    (tm, tr), (sm, sr) = train, (test[0], ordered[:first] if first else ordered)
    check_collections((tm, tr), (sm, sr), allow_other_reasoner)
    sig = collection_signals(sm, sr)
    feats = learned_features
    if feats == "auto":
        feats = "all" if sig.probes and sig.critique else "live"
    d = Path(out).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    trained = train_all(tm, tr, chosen, d, learned_features=feats, seed=seed, progress=say)
    every = int(tm.settings.get("probe_every", 64))
    rep = replay_test(
        trained, chosen, sm, sr, train_probe_every=every, allow_other_reasoner=allow_other_reasoner
    )
    say(f"replayed {len(rep.questions)} test questions (k = {rep.k})")
    seed_ = chosen.seed if seed is None else seed
    report: dict[str, Any] = {
        "format": FORMAT,
        "train": {"dirs": list(names[0]), "questions": len(tr)},
        "test": {
            "dir": names[1],
            "questions": len(rep.questions),
            "k": rep.k,
            "probes": sig.probes,
            "why_no_probes": sig.why,
            "critique": sig.critique,
            "max_tokens": max_tokens_of(sm),
            "probe_every": sm.settings.get("probe_every"),
        },
        "chosen": {
            "path": names[2],
            **chosen.model_dump(exclude={"chosen", "format"}),
        },
        "trained": {
            "families": list(trained.dm.feature_families),
            "free_families": list(trained.free.feature_families),
            "learned_features": trained.learned_families,
            "selective": trained.selective_source,
            "selective_thresholds": trained.thresholds,
        },
        "goals": {
            "margin": chosen.margin,
            "tokens_pct": GOAL_TOKENS,
            "auroc": GOAL_AUROC,
            "ece": GOAL_ECE,
            "gap_closed": GOAL_GAP,
            "p_value": GOAL_P,
            "selective_gain": GOAL_SELECTIVE,
            "coverage": COVERAGE,
        },
        "notes": _notes(tm, sm, chosen, names[0], rep.k, len(tr)),
        "all": tables(rep, chosen, trained, rep.questions, resamples=resamples, seed=seed_),
        "subset": None,
        "plots": [],
    }
    if subset_first and subset_first < len(rep.questions):
        qs = rep.questions[:subset_first]
        report["subset"] = tables(rep, chosen, trained, qs, resamples=resamples, seed=seed_)
    if plots:
        try:
            plot_reliability(rep, d / "reliability.png")
            report["plots"].append("reliability.png")
        except ImportError:
            report["notes"].append(
                "plots skipped: matplotlib is missing (pip install ponder[plot])"
            )
    return HeldOut(report, rep, trained)


def _notes(
    tm: Manifest, sm: Manifest, chosen: ChosenStops, dirs: Sequence[str], k: int, n: int
) -> list[str]:
    notes = []
    if n != chosen.questions:
        notes.append(
            f"chosen.json was made on {chosen.questions} train questions; this report trains on "
            f"{n} (rerun `ponder drr cv` on these to choose on them)"
        )
    if dirs and sorted(dirs) != sorted(chosen.train):
        notes.append(
            f"chosen.json was made on {', '.join(chosen.train)}; this report trains on "
            f"{', '.join(dirs)}"
        )
    if max_tokens_of(tm) != max_tokens_of(sm):
        notes.append(f"max_tokens differ: train {max_tokens_of(tm)}, test {max_tokens_of(sm)}")
    if chosen.baseline != f"fixed@{k}":
        notes.append(f"the choice's baseline was {chosen.baseline}; the test's is fixed@{k}")
    return notes


__all__ = [
    "FORMAT",
    "GOAL_AUROC",
    "GOAL_ECE",
    "GOAL_GAP",
    "GOAL_P",
    "GOAL_SELECTIVE",
    "HeldOut",
    "aggregation_rows",
    "held_out_report",
    "judge_rows",
    "plot_reliability",
    "policy_rows",
    "selective_rows",
    "tables",
]
