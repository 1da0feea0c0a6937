"""Train the DRR judge (DM) on a behaviour collection, split by question, never by checkpoint.

Use ``train_dm(manifest, records)`` (or ``ponder drr train --data DIR --out FILE``). Two scorers
are fitted, each by picking logistic regression or small gradient-boosted trees on grouped
cross-validation (folds by question, AUROC of the out-of-fold scores), then Platt-calibrating the
chosen model's out-of-fold scores and refitting it on everything:

- ``checkpoint``: one row per checkpoint state of every trace (``states.trace_states``), label =
  the state's current answer is right. With ``probes=False`` (a *probe-free* DM, for
  ``drr_sample``/``drr_bayes`` with ``probes: false``): one row per trace, its end as one call
  would have produced it (no probe answers; ``states.one_call_state``), on families that need no
  probes (``confidence``, ``length``; ``votes`` is refused); the artifact says ``probe_free``.
- ``sampling``: one row per (question, first n samples), label = the majority of those n is
  right; its DM features use the *out-of-fold* checkpoint scores, so they are as noisy as at
  inference.

``families`` picks the checkpoint scorer's feature families (``votes``, ``confidence``,
``length``, ``thinking``, ``hidden``; default the first three; ``thinking``, the thinking's
length and the probe answers' stability, only when named). ``hidden`` needs the collection's
hidden-state sidecar (``ponder corpus hidden DIR``; read with
``ponder.behaviour.hidden.read_hidden``); the artifact then records the sidecar's projection and
also carries a fallback checkpoint scorer trained without it (``DM.without_hidden``), used where
no hidden state is available.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ponder.behaviour.hidden import HiddenStates
from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.behaviour.stats import auroc
from ponder.errors import InputError
from ponder.grading import is_equivalent
from ponder.learning.drr.states import one_call_state, trace_states
from ponder.stopping.features import (
    BASE_FAMILIES,
    DM_FAMILIES,
    KNOWN_FAMILIES,
    SAMPLING_FEATURES,
    checkpoint_feature_names,
    checkpoint_features,
    majority,
    sampling_features,
)
from ponder.stopping.model import (
    DM,
    PROBE_FAMILIES,
    PROBE_FREE_FAMILIES,
    Boosted,
    HiddenSpec,
    Linear,
    Scorer,
    Tree,
)


@dataclass
class Rows:
    x: list[list[float]] = field(default_factory=list)
    y: list[bool] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    final: list[bool] = field(default_factory=list)
    sample: list[tuple[int, int]] = field(default_factory=list)  # (question, sample) per row


def max_tokens_of(manifest: Manifest) -> int:
    return int(manifest.settings.get("max_tokens", 320))


def checkpoint_rows(
    records: Sequence[QuestionRecord],
    max_tokens: int,
    families: Sequence[str] | None = None,
    hidden: HiddenStates | None = None,
    probes: bool = True,
) -> Rows:
    """One row per checkpoint state of every trace; ``probes=False``: one row per trace, its
    one-call end (``states.one_call_state``)."""
    rows = Rows()
    dims = hidden.dims if hidden is not None else 0
    for qi, q in enumerate(records):
        for si, s in enumerate(q.samples):
            if s.error:
                continue
            h = hidden.vector(q.id, s.seed) if hidden is not None else None
            states = (
                trace_states(s, max_tokens, hidden=h)
                if probes
                else [one_call_state(s, max_tokens, hidden=h)]
            )
            for st in states:
                rows.x.append(checkpoint_features(st.state, families, dims))
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


def resolve_dm_families(spec: str | Sequence[str] | None) -> tuple[str, ...]:
    """``None``/``"base"``: votes, confidence, length; ``"all"`` adds hidden; else a
    comma-separated or listed choice (``thinking``, optional, only when named)."""
    if spec is None:
        return BASE_FAMILIES
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        for fam in {"base": BASE_FAMILIES, "all": DM_FAMILIES}.get(name, (name,)):
            if fam not in KNOWN_FAMILIES:
                raise InputError(
                    f"unknown DM feature family {fam!r}; valid: base, all, "
                    + ", ".join(KNOWN_FAMILIES)
                )
            if fam not in out:
                out.append(fam)
    return tuple(f for f in KNOWN_FAMILIES if f in out)


def _check_hidden(families: Sequence[str], hidden: HiddenStates | None, n: int) -> None:
    if "hidden" not in families:
        return
    if hidden is None or not len(hidden):
        raise InputError(
            "the hidden family needs the collection's hidden-state sidecar: run "
            "`ponder corpus hidden DIR` first"
        )


def train_dm(
    manifest: Manifest,
    records: Sequence[QuestionRecord],
    seed: int = 0,
    *,
    families: str | Sequence[str] | None = None,
    hidden: HiddenStates | None = None,
    sampling: bool = True,
    probes: bool = True,
) -> DM:
    """Fit the checkpoint and sampling scorers on one collection (see the module doc);
    ``probes=False``: a probe-free DM (default families confidence, length)."""
    if not records:
        raise InputError("cannot train: the collection has no question records yet")
    fams = resolve_dm_families(families if families is not None or probes else PROBE_FREE_FAMILIES)
    if not probes and set(fams) & set(PROBE_FAMILIES):
        raise InputError(
            "a probe-free DM cannot use the votes family (the probe answers' agreement); "
            f"choose from {', '.join(PROBE_FREE_FAMILIES)} (the votes across samples are the "
            "sampling scorer's, always there)"
        )
    _check_hidden(fams, hidden, len(records))
    use_hidden = hidden if "hidden" in fams else None
    dims = use_hidden.dims if use_hidden is not None else 0
    mt = max_tokens_of(manifest)
    crow = checkpoint_rows(records, mt, fams, use_hidden, probes)
    checkpoint, p_oof = fit_scorer(crow, checkpoint_feature_names(fams, dims), seed)
    fallback = None
    base = [f for f in fams if f != "hidden"]
    if use_hidden is not None and base:  # hidden alone has nothing to fall back on
        fallback = fit_scorer(
            checkpoint_rows(records, mt, base, probes=probes),
            checkpoint_feature_names(base),
            seed,
        )[0]
    final_p = {crow.sample[i]: p for i, p in enumerate(p_oof) if crow.final[i]}
    k = int(manifest.settings.get("k", 8))
    srow = sampling_rows(records, final_p, k)
    fit_sampling = sampling and len(set(srow.y)) == 2
    sampler = fit_scorer(srow, SAMPLING_FEATURES, seed)[0] if fit_sampling else None
    return DM(
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        manifest=manifest,
        checkpoint=checkpoint,
        sampling=sampler,
        families=None if fams == BASE_FAMILIES and probes else list(fams),
        hidden=HiddenSpec(projection=use_hidden.projection, dims=dims) if use_hidden else None,
        checkpoint_fallback=fallback,
        probe_free=None if probes else True,
        train={
            "questions": len(records),
            "samples": sum(len(q.samples) for q in records),
            "checkpoint_rows": len(crow.y),
            "sampling_rows": len(srow.y),
            "seed": seed,
            **({"families": list(fams)} if fams != BASE_FAMILIES else {}),
            **({} if probes else {"probes": False}),
            **(
                {
                    "hidden_samples": sum(
                        1
                        for q in records
                        for sm in q.samples
                        if use_hidden.vector(q.id, sm.seed) is not None
                    )
                }
                if use_hidden is not None
                else {}
            ),
        },
    )
