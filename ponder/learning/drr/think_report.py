"""Stop thinking where it pays: fixed thinking budgets, Dynasor's probe stop and the DM's
stop-thinking, replayed on a held-out thinking-format collection with every knob chosen on train.

Use ``think_report(train, test, margin=0.05)`` (``train``/``test``: ``(manifest, records)`` of two
collections made with ``ponder collect --thinking-budget N`` on a thinking backend) or ``ponder drr
think-report --train DIR --test DIR --out DIR``. A unit is one recorded trace. Policies:

- ``full``: the whole thinking (to the model's own end or the cap), then the forced answer;
- ``budget@B``: at most ``B`` thinking tokens. A trace whose thinking ended by ``B`` is ``full``;
  else its answer is the probe's at ``B`` (the Dynasor cue inside the thinking). This
  *approximates* forcing at ``B`` (closing the thinking there and letting the model answer);
  the probe writes only the boxed answer;
- ``dynasor@m``: stop at the first probe where the last ``m`` probe answers agree;
- ``dm_think@t``: stop at the first checkpoint where the DM's P(correct) >= ``t``.

Knobs (``m``, ``t``) are chosen on the *train* collection only: the cheapest setting (fewest
thinking tokens) whose train accuracy is within ``margin`` of full thinking's on train, the DM's
train scores cross-fitted by question (each fold scored by a DM trained on the other folds).
The DM used on test is trained on all of train. Test numbers, per policy: accuracy with a 95%
interval (Wilson with one trace per question; else a bootstrap that resamples questions), the
accuracy difference from full with a 95% question-bootstrap interval (non-inferior: its lower
end above ``-margin``), won/lost traces and the exact McNemar p vs full, mean thinking tokens
and the share saved vs full, and mean generated tokens (thinking, probes and answer, as a live
policy would spend them). ``write_report`` writes ``think_report.md`` and ``think_report.json``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.behaviour.stats import paired, wilson
from ponder.errors import InputError
from ponder.learning.drr.replay import (
    DM_GRID,
    ScoredQuestion,
    ScoredTrace,
    Unit,
    dm_think,
    dynasor,
    score_collection,
)
from ponder.learning.drr.train import max_tokens_of, train_dm
from ponder.stopping.features import BASE_FAMILIES
from ponder.stopping.model import DM

Collection = tuple[Manifest, Sequence[QuestionRecord]]

BUDGETS = (256, 512)
DYNASOR_GRID = (2, 3, 4, 5, 6)
THINK_FAMILIES = (*BASE_FAMILIES, "thinking")
"""The DM's default families here: the base ones and the thinking's length and stability."""
MATCHED = ("max_tokens", "probe_every", "probe_max_tokens", "probe_stop", "thinking")
"""Settings train and test must share: the states a stop policy sees depend on them."""


@dataclass(frozen=True)
class Stop:
    """One trace under one policy: right or not, thinking tokens, all generated tokens."""

    correct: bool
    thinking: int
    generated: int


def thinking_of(t: ScoredTrace) -> int:
    """The trace's whole thinking (a plain trace: all its tokens are reasoning)."""
    s = t.sample
    return s.thinking_tokens if s.thinking_tokens is not None else s.tokens


def _unit(t: ScoredTrace, u: Unit) -> Stop:
    final = u.stopped_at == len(t.states) - 1
    return Stop(u.correct, thinking_of(t) if final else t.states[u.stopped_at].state.at, u.tokens)


def full_stop(t: ScoredTrace) -> Stop:
    return Stop(t.sample.correct, thinking_of(t), t.sample.tokens)


def budget_stop(t: ScoredTrace, budget: int) -> Stop:
    """``budget@B`` (see the module doc): the probe at ``B`` stands in for forcing at ``B``."""
    if thinking_of(t) <= budget:
        return full_stop(t)
    before = [i for i, st in enumerate(t.states[:-1]) if st.state.at <= budget]
    if not before:  # no probe by then: no answer
        return Stop(False, budget, budget)
    i = before[-1]
    st = t.states[i]
    probe = t.sample.probes[i].tokens if i < len(t.sample.probes) else 0
    return Stop(st.correct, st.state.at, st.state.at + probe)


Policy = Callable[[ScoredTrace], Stop]


def dynasor_policy(m: int) -> Policy:
    """``dynasor@m``: stop where the last ``m`` probe answers agree."""
    return lambda t: _unit(t, dynasor(t, m))


def dm_policy(threshold: float) -> Policy:
    """``dm_think@t``: stop where the DM's P(correct) first reaches ``threshold``."""
    return lambda t: _unit(t, dm_think(t, threshold))


def budget_policy(budget: int) -> Policy:
    """``budget@B`` (``budget_stop``)."""
    return lambda t: budget_stop(t, budget)


def knob_policies(kind: str) -> list[tuple[float, Policy]]:
    """The grid of a tuned policy: ``dynasor`` (m) or ``dm_think`` (threshold)."""
    if kind == "dynasor":
        return [(m, dynasor_policy(m)) for m in DYNASOR_GRID]
    return [(th, dm_policy(th)) for th in DM_GRID]


@dataclass
class Candidate:
    """One knob setting's train numbers."""

    knob: float
    accuracy: float
    thinking: float
    within: bool


@dataclass
class Chosen:
    """The setting chosen on train for one policy, and every setting's train numbers."""

    policy: str
    knob: float
    within_margin: bool
    candidates: list[Candidate] = field(default_factory=list)


def choose(
    policy: str, traces: Sequence[ScoredTrace], full_accuracy: float, margin: float
) -> Chosen:
    """The cheapest setting whose accuracy on ``traces`` is within ``margin`` of full's (ties:
    the more accurate, then the more cautious); when none is, the most accurate
    (``within_margin`` False)."""
    cands = []
    for knob, run in knob_policies(policy):
        stops = [run(t) for t in traces]
        acc = _mean([s.correct for s in stops])
        mean_thinking = _mean([s.thinking for s in stops])
        cands.append(Candidate(knob, acc, mean_thinking, acc >= full_accuracy - margin - 1e-12))
    ok = [c for c in cands if c.within]
    # the grids run from the boldest setting to the most cautious: on a tie, the cautious one
    if ok:
        best = min(reversed(ok), key=lambda c: (c.thinking, -c.accuracy))
    else:
        best = max(reversed(cands), key=lambda c: (c.accuracy, c.thinking))
    return Chosen(policy, best.knob, bool(ok), cands)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def crossfit(
    collection: Collection, families: Sequence[str] | None, folds: int, seed: int
) -> list[ScoredQuestion]:
    """``collection`` scored by DMs that never saw the question scored: ``folds`` folds by
    question, each scored by a DM trained on the others."""
    manifest, records = collection
    n = len(records)
    folds = min(folds, n)
    if folds < 2:
        raise InputError("cross-fitting the DM on train needs at least 2 questions")
    order = list(range(n))
    random.Random(seed).shuffle(order)
    fold_of = {q: i % folds for i, q in enumerate(order)}
    out: list[ScoredQuestion] = []
    for f in range(folds):
        held = [r for i, r in enumerate(records) if fold_of[i] == f]
        rest = [r for i, r in enumerate(records) if fold_of[i] != f]
        dm = train_dm(manifest, rest, seed, families=families, sampling=False)
        out += score_collection(dm, held, max_tokens_of(manifest))
    return out


def check_pair(train: Collection, test: Collection) -> None:
    """Refuse a train/test pair that shares questions or was collected with other settings."""
    (tm, tr), (em, er) = train, test
    if tm.dataset.sha256 == em.dataset.sha256 and {r.id for r in tr} & {r.id for r in er}:
        raise InputError("the train and test collections share questions; split by question")
    diffs = [
        f"{k} ({tm.settings.get(k)!r} on train vs {em.settings.get(k)!r} on test)"
        for k in MATCHED
        if tm.settings.get(k) != em.settings.get(k)
    ]
    if diffs:
        raise InputError(
            "the train and test collections were made with other settings: " + "; ".join(diffs)
        )


@dataclass
class Row:
    """One policy's test numbers (see the module doc)."""

    policy: str
    traces: int
    accuracy: float
    ci95: tuple[float, float]
    diff: float
    diff_ci95: tuple[float, float]
    non_inferior: bool
    won: int
    lost: int
    mcnemar_p: float
    thinking: float
    thinking_saved: float
    generated: float


def _cluster_ci(
    values: Sequence[float], groups: Sequence[str], resamples: int, seed: int
) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean of ``values``, resampling whole groups."""
    import numpy as np

    keys = sorted(set(groups))
    index = {g: i for i, g in enumerate(keys)}
    sums, counts = np.zeros(len(keys)), np.zeros(len(keys))
    for v, g in zip(values, groups, strict=True):
        sums[index[g]] += v
        counts[index[g]] += 1
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(keys), (resamples, len(keys)))
    means = sums[pick].sum(axis=1) / counts[pick].sum(axis=1)
    lo, hi = np.quantile(means, [0.025, 0.975])
    return float(lo), float(hi)


def rows_on_test(
    policies: Sequence[tuple[str, Policy]],
    traces: Sequence[ScoredTrace],
    groups: Sequence[str],
    margin: float,
    resamples: int = 2000,
    seed: int = 0,
) -> list[Row]:
    """Each policy against ``full`` (the first of ``policies``) on the test traces."""
    runs = [(name, [run(t) for t in traces]) for name, run in policies]
    base = runs[0][1]
    base_thinking = _mean([s.thinking for s in base])
    one_each = len(set(groups)) == len(groups)
    rows = []
    for name, stops in runs:
        right = [s.correct for s in stops]
        n, k = len(right), sum(right)
        if one_each:
            ci = wilson(k, n)
        else:
            ci = _cluster_ci([float(x) for x in right], groups, resamples, seed)
        delta = [float(a.correct) - float(b.correct) for a, b in zip(stops, base, strict=True)]
        dci = _cluster_ci(delta, groups, resamples, seed)
        pr = paired(right, [s.correct for s in base])
        mean_thinking = _mean([s.thinking for s in stops])
        rows.append(
            Row(
                policy=name,
                traces=n,
                accuracy=k / n if n else 0.0,
                ci95=ci,
                diff=_mean(delta),
                diff_ci95=dci,
                non_inferior=dci[0] > -margin,
                won=pr.won,
                lost=pr.lost,
                mcnemar_p=pr.p_value,
                thinking=mean_thinking,
                thinking_saved=1 - mean_thinking / base_thinking if base_thinking else 0.0,
                generated=_mean([s.generated for s in stops]),
            )
        )
    return rows


@dataclass
class ThinkReport:
    """What ``think_report`` measured; ``markdown()`` and ``to_dict()`` are the two outputs."""

    margin: float
    train: dict[str, Any]
    test: dict[str, Any]
    choices: list[Chosen]
    rows: list[Row]
    dm: dict[str, Any]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "margin": self.margin,
            "train": self.train,
            "test": self.test,
            "dm": self.dm,
            "chosen_on_train": [asdict(c) for c in self.choices],
            "test_rows": [asdict(r) for r in self.rows],
            "notes": self.notes,
        }

    def markdown(self) -> str:
        m = self.margin
        lines = [
            "# Stop thinking: replay on held-out questions",
            "",
            f"**Non-inferiority margin: {m:.3g} accuracy ({100 * m:g} points) against full "
            f"thinking.** A policy is non-inferior when the lower end of the 95% interval of its "
            f"accuracy minus full's is above -{m:.3g}.",
            "",
            f"- train: {_describe(self.train)}",
            f"- test: {_describe(self.test)}",
            f"- DM: families {', '.join(self.dm['families'])}; knobs cross-fitted on train by "
            f"question ({self.dm['folds']} folds)",
            "",
            "## Chosen on train",
            "",
            "| policy | chosen | within margin on train | grid (knob: accuracy, thinking) |",
            "|---|---|---|---|",
        ]
        for c in self.choices:
            grid = "; ".join(
                f"{x.knob:g}: {x.accuracy:.3f}, {x.thinking:.0f}" for x in c.candidates
            )
            lines.append(
                f"| {c.policy} | {c.knob:g} | {'yes' if c.within_margin else 'no'} | {grid} |"
            )
        full_acc = self.train.get("full_accuracy")
        if full_acc is not None:
            lines += ["", f"Full thinking's train accuracy: {full_acc:.3f}."]
        lines += [
            "",
            "## Test",
            "",
            "| policy | traces | accuracy [95%] | vs full [95%] | non-inferior | won/lost | "
            "McNemar p | thinking tokens | saved | generated tokens |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.policy} | {r.traces} | {r.accuracy:.3f} [{r.ci95[0]:.3f}, {r.ci95[1]:.3f}]"
                f" | {r.diff:+.3f} [{r.diff_ci95[0]:+.3f}, {r.diff_ci95[1]:+.3f}] | "
                f"{'yes' if r.non_inferior else 'no'} | {r.won}/{r.lost} | {r.mcnemar_p:.3g} | "
                f"{r.thinking:.1f} | {r.thinking_saved:.0%} | {r.generated:.1f} |"
            )
        lines += ["", "## Notes", "", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines) + "\n"


def _describe(c: dict[str, Any]) -> str:
    return (
        f"{c['path']} ({c['questions']} questions, {c['traces']} traces; thinking cap "
        f"{c['cap']}, probes every {c['probe_every']}; {c['format']})"
    )


def _info(path: str, collection: Collection, traces: int) -> dict[str, Any]:
    manifest, records = collection
    return {
        "path": path,
        "questions": len(records),
        "traces": traces,
        "cap": max_tokens_of(manifest),
        "probe_every": manifest.settings.get("probe_every"),
        "format": "thinking format" if manifest.settings.get("thinking") else "plain (no thinking)",
        "dataset": manifest.dataset.path,
    }


def think_report(
    train: Collection,
    test: Collection,
    *,
    margin: float = 0.05,
    budgets: Sequence[int] = BUDGETS,
    families: Sequence[str] | None = THINK_FAMILIES,
    folds: int = 5,
    seed: int = 0,
    resamples: int = 2000,
    dm: DM | None = None,
    names: tuple[str, str] = ("train", "test"),
) -> ThinkReport:
    """The stop-thinking report (see the module doc); ``dm``: a DM trained on ``train`` already
    (else one is trained with ``families``)."""
    if not 0 <= margin < 1:
        raise InputError(f"--margin is an accuracy difference in [0, 1), got {margin}")
    check_pair(train, test)
    judge = dm or train_dm(train[0], train[1], seed, families=families, sampling=False)
    judge.check_reasoner(test[0])
    fams = list(judge.feature_families)
    # knobs on train: Dynasor on the traces as recorded, the DM threshold on cross-fitted scores
    train_scored = crossfit(train, fams, folds, seed)
    train_traces = [t for q in train_scored for t in q.traces]
    full_acc = _mean([full_stop(t).correct for t in train_traces])
    choices = [choose(p, train_traces, full_acc, margin) for p in ("dynasor", "dm_think")]
    scored = score_collection(judge, test[1], max_tokens_of(test[0]))
    traces = [t for q in scored for t in q.traces]
    groups = [q.record.id for q in scored for _ in q.traces]
    if not traces:
        raise InputError("the test collection has no finished traces to replay")
    cap = max_tokens_of(test[0])
    m, th = choices[0].knob, choices[1].knob
    policies: list[tuple[str, Policy]] = [("full", full_stop)]
    policies += [(f"budget@{b}", budget_policy(b)) for b in budgets if b < cap]
    policies += [(f"dynasor@{m:g}", dynasor_policy(int(m))), (f"dm_think@{th:g}", dm_policy(th))]
    rows = rows_on_test(policies, traces, groups, margin, resamples, seed)
    notes = [
        "budget@B answers with the probe at B (the answer cue inside the thinking); it "
        "approximates forcing at B (closing the thinking there and letting the model answer).",
        "Thinking tokens: the thinking up to the stop (the whole thinking for full); generated "
        "tokens add the probes a live policy makes up to its stop (budget@B: one probe) and, "
        "where the trace ran to its end, the answer.",
        "Knobs were chosen on train only, then fixed; the test collection was not looked at.",
    ]
    if len(set(groups)) != len(groups):
        notes.append(
            "Several traces per question: accuracy intervals and the differences' intervals "
            "resample questions; the McNemar p treats traces as independent (optimistic)."
        )
    if not test[0].settings.get("thinking"):
        notes.append("The test collection is not in the thinking format: thinking = reasoning.")
    skipped = [b for b in budgets if b >= cap]
    if skipped:
        notes.append(f"Budgets at or above the cap ({cap}) are full thinking: left out {skipped}.")
    return ThinkReport(
        margin=margin,
        train={**_info(names[0], train, len(train_traces)), "full_accuracy": full_acc},
        test=_info(names[1], test, len(traces)),
        choices=choices,
        rows=rows,
        dm={"families": fams, "folds": min(folds, len(train[1])), "train": judge.train},
        notes=notes,
    )


def write_report(report: ThinkReport, out: str | Path) -> tuple[Path, Path]:
    """``think_report.md`` and ``think_report.json`` in ``out`` (created)."""
    out = Path(out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "think_report.md", out / "think_report.json"
    md.write_text(report.markdown(), encoding="utf-8")
    js.write_text(json.dumps(report.to_dict(), indent=2), encoding="utf-8")
    return md, js
