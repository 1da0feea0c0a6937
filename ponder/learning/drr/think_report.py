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

Knobs (``m``, ``t``, and which fixed budget ``B``) are chosen on the *train* collection only: the
cheapest setting (fewest thinking tokens) whose train accuracy is within ``margin`` of full
thinking's on train, the DM's train scores cross-fitted by question (each fold scored by a DM
trained on the other folds). Every budget is still replayed on test; the train choice says which
one a user would have fixed.
The DM used on test is trained on all of train. Test numbers, per policy: accuracy with a 95%
interval (Wilson with one trace per question; else a bootstrap that resamples questions), the
accuracy difference from full with a 95% question-bootstrap interval (non-inferior: its lower
end above ``-margin``), won/lost traces and the exact McNemar p vs full, mean thinking tokens
and the share saved vs full, and mean generated tokens (thinking, probes and answer, as a live
policy would spend them). ``write_report`` writes ``think_report.md`` and ``think_report.json``.

Here: the pair check, the cross-fitting on train and ``think_report``/``write_report`` that tie
them together. The policies and the choice of their knobs are ``think_policies``, the test rows
``think_rows``, the report object and its markdown ``think_markdown``; their names are
re-exported here.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.errors import InputError
from ponder.learning.drr.replay import ScoredQuestion, score_collection
from ponder.learning.drr.think_markdown import ThinkReport
from ponder.learning.drr.think_policies import (
    DYNASOR_GRID,
    Candidate,
    Chosen,
    Policy,
    Stop,
    budget_policy,
    budget_stop,
    choose,
    dm_policy,
    dynasor_policy,
    full_stop,
    knob_policies,
    mean_of,
    thinking_of,
)
from ponder.learning.drr.think_rows import Row, rows_on_test
from ponder.learning.drr.train import max_tokens_of, train_dm
from ponder.stopping.features import BASE_FAMILIES
from ponder.stopping.model import DM

Collection = tuple[Manifest, Sequence[QuestionRecord]]

BUDGETS = (256, 512)
THINK_FAMILIES = (*BASE_FAMILIES, "thinking")
"""The DM's default families here: the base ones and the thinking's length and stability."""
MATCHED = ("max_tokens", "probe_every", "probe_max_tokens", "probe_stop", "thinking")
"""Settings train and test must share: the states a stop policy sees depend on them."""


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
    full_acc = mean_of([full_stop(t).correct for t in train_traces])
    cap = max_tokens_of(test[0])
    grid = [b for b in budgets if b < cap]
    kinds = ("dynasor", "dm_think", "budget") if grid else ("dynasor", "dm_think")
    choices = [choose(p, train_traces, full_acc, margin, grid) for p in kinds]
    scored = score_collection(judge, test[1], cap)
    traces = [t for q in scored for t in q.traces]
    groups = [q.record.id for q in scored for _ in q.traces]
    if not traces:
        raise InputError("the test collection has no finished traces to replay")
    m, th = choices[0].knob, choices[1].knob
    policies: list[tuple[str, Policy]] = [("full", full_stop)]
    policies += [(f"budget@{b}", budget_policy(b)) for b in grid]
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


__all__ = [
    "BUDGETS",
    "DYNASOR_GRID",
    "MATCHED",
    "THINK_FAMILIES",
    "Candidate",
    "Chosen",
    "Collection",
    "Policy",
    "Row",
    "Stop",
    "ThinkReport",
    "budget_policy",
    "budget_stop",
    "check_pair",
    "choose",
    "crossfit",
    "dm_policy",
    "dynasor_policy",
    "full_stop",
    "knob_policies",
    "rows_on_test",
    "think_report",
    "thinking_of",
    "write_report",
]
