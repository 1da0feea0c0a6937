"""Train the DRR judge (DM) on a behaviour collection, split by question, never by checkpoint.

Use ``train_dm(manifest, records)`` (or ``ponder drr train --data DIR --out FILE``). Two scorers
are fitted, each by picking logistic regression or small gradient-boosted trees on grouped
cross-validation (folds by question, AUROC of the out-of-fold scores), then Platt-calibrating the
chosen model's out-of-fold scores and refitting it on everything:

- ``checkpoint``: one row per checkpoint state of every trace (``states.trace_states``), label =
  the state's current answer is right.
- ``sampling``: one row per (question, first n samples), label = the majority of those n is
  right; its DM features use the *out-of-fold* checkpoint scores, so they are as noisy as at
  inference.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.behaviour.stats import auroc
from ponder.errors import InputError
from ponder.grading import is_equivalent
from ponder.learning.drr.states import trace_states
from ponder.stopping.features import (
    CHECKPOINT_FEATURES,
    SAMPLING_FEATURES,
    checkpoint_features,
    majority,
    sampling_features,
)
from ponder.stopping.model import DM, Boosted, Linear, Scorer, Tree


@dataclass
class Rows:
    x: list[list[float]] = field(default_factory=list)
    y: list[bool] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    final: list[bool] = field(default_factory=list)
    sample: list[tuple[int, int]] = field(default_factory=list)  # (question, sample) per row


def max_tokens_of(manifest: Manifest) -> int:
    return int(manifest.settings.get("max_tokens", 320))


def checkpoint_rows(records: Sequence[QuestionRecord], max_tokens: int) -> Rows:
    rows = Rows()
    for qi, q in enumerate(records):
        for si, s in enumerate(q.samples):
            if s.error:
                continue
            for st in trace_states(s, max_tokens):
                rows.x.append(checkpoint_features(st.state))
                rows.y.append(st.correct)
                rows.groups.append(qi)
                rows.final.append(st.final)
                rows.sample.append((qi, si))
    return rows


def sampling_rows(
    records: Sequence[QuestionRecord], final_p: dict[tuple[int, int], float], k: int
) -> Rows:
    rows = Rows()
    for qi, q in enumerate(records):
        answers: list[str | None] = []
        scores: list[float] = []
        for si, s in enumerate(q.samples):
            if s.error:
                continue
            answers.append(s.answer)
            scores.append(final_p.get((qi, si), 0.0))
            rows.x.append(sampling_features(answers, scores, k))
            rows.y.append(is_equivalent(majority(answers), q.gold))
            rows.groups.append(qi)
    return rows


def _candidates(seed: int) -> dict[str, Any]:
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {
        "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
        "gbt": lambda: GradientBoostingClassifier(
            n_estimators=80, max_depth=2, learning_rate=0.08, subsample=0.8, random_state=seed
        ),
    }


def _export(kind: str, est: Any, y: Sequence[bool]) -> Linear | Boosted:
    if kind == "logistic":
        scaler, lr = est[0], est[-1]
        return Linear(
            mean=[float(v) for v in scaler.mean_],
            scale=[float(v) for v in scaler.scale_],
            coef=[float(v) for v in lr.coef_[0]],
            intercept=float(lr.intercept_[0]),
        )
    prior = min(max(sum(y) / len(y), 1e-6), 1 - 1e-6)
    trees = []
    for t in est.estimators_[:, 0]:
        tr = t.tree_
        trees.append(
            Tree(
                feature=[int(v) for v in tr.feature],
                threshold=[float(v) for v in tr.threshold],
                left=[int(v) for v in tr.children_left],
                right=[int(v) for v in tr.children_right],
                value=[float(v) for v in tr.value[:, 0, 0]],
            )
        )
    return Boosted(
        init=math.log(prior / (1 - prior)), learning_rate=float(est.learning_rate), trees=trees
    )


def platt(raw: Sequence[float], y: Sequence[bool]) -> tuple[float, float]:
    """Platt calibration ``P = sigmoid(a * raw + b)`` with ``a >= 0``.

    A negative slope would invert a model whose out-of-fold scores happen to rank backwards (small
    data); then the calibrated answer is the base rate (``a = 0``), which says what CV showed.
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(raw).reshape(-1, 1), list(y))
    a, b = float(m.coef_[0][0]), float(m.intercept_[0])
    if a > 0:
        return a, b
    rate = min(max(sum(y) / len(y), 1e-6), 1 - 1e-6)
    return 0.0, math.log(rate / (1 - rate))


def fit_scorer(
    rows: Rows, features: Sequence[str], seed: int = 0, folds: int = 5
) -> tuple[Scorer, list[float]]:
    """Pick, calibrate and fit a scorer; returns it and the calibrated out-of-fold P's."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    if len(set(rows.y)) < 2:
        raise InputError(
            f"cannot train: all {len(rows.y)} training states are "
            f"{'right' if rows.y and rows.y[0] else 'wrong'}; collect more (or harder) questions"
        )
    x, y, g = np.asarray(rows.x, float), np.asarray(rows.y, int), np.asarray(rows.groups)
    n_folds = min(folds, len(set(rows.groups)))
    if n_folds < 2:
        raise InputError("cannot train: grouped cross-validation needs at least 2 questions")
    cv: dict[str, Any] = {"folds": n_folds, "rows": len(y), "positives": int(y.sum())}
    oof: dict[str, Any] = {}
    for kind, make in _candidates(seed).items():
        raw = np.zeros(len(y))
        for tr, te in GroupKFold(n_splits=n_folds).split(x, y, g):
            if len(set(y[tr])) < 2:
                raw[te] = 0.0
                continue
            raw[te] = make().fit(x[tr], y[tr]).decision_function(x[te])
        oof[kind] = raw
        cv[f"auroc_{kind}"] = auroc(list(map(bool, y)), list(raw))
    best = "logistic"
    if (cv.get("auroc_gbt") or 0) > (cv.get("auroc_logistic") or 0) + 0.005:
        best = "gbt"
    cv["chosen"] = best
    a, b = platt(list(oof[best]), list(map(bool, y)))
    if a == 0.0:
        cv["note"] = (
            "no held-out signal (out-of-fold scores rank no better than chance): constant P"
        )
    model = _export(best, _candidates(seed)[best]().fit(x, y), list(map(bool, y)))
    p_oof = [1 / (1 + math.exp(-max(-50.0, min(50.0, a * r + b)))) for r in oof[best]]
    return Scorer(features=list(features), model=model, platt_a=a, platt_b=b, cv=cv), p_oof


def train_dm(manifest: Manifest, records: Sequence[QuestionRecord], seed: int = 0) -> DM:
    """Fit the checkpoint and sampling scorers on one collection (see the module doc)."""
    if not records:
        raise InputError("cannot train: the collection has no question records yet")
    mt = max_tokens_of(manifest)
    crow = checkpoint_rows(records, mt)
    checkpoint, p_oof = fit_scorer(crow, CHECKPOINT_FEATURES, seed)
    final_p = {crow.sample[i]: p for i, p in enumerate(p_oof) if crow.final[i]}
    k = int(manifest.settings.get("k", 8))
    srow = sampling_rows(records, final_p, k)
    sampling = fit_scorer(srow, SAMPLING_FEATURES, seed)[0] if len(set(srow.y)) == 2 else None
    return DM(
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        manifest=manifest,
        checkpoint=checkpoint,
        sampling=sampling,
        train={
            "questions": len(records),
            "samples": sum(len(q.samples) for q in records),
            "checkpoint_rows": len(crow.y),
            "sampling_rows": len(srow.y),
            "seed": seed,
        },
    )
