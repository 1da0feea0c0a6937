"""Held-out evaluation of a DM and of every stop policy on a test collection (replay).

Use ``evaluate(dm, test_manifest, test_records, out_dir, train_records=...)`` or ``ponder drr
evaluate``. It writes ``report.json``, ``report.txt`` and three PNGs into ``out_dir``:
``reliability.png`` (DM vs mean token logprob vs self-critique, at final answers),
``sequential.png`` and ``parallel.png`` (accuracy vs mean generated tokens per policy, over each
policy's threshold grid). Baselines are judged as a user would use them (``as is``: exp of the
mean logprob, P("yes")) and Platt-calibrated on the train collection when one is given.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ponder.behaviour.hidden import HiddenStates
from ponder.behaviour.records import Manifest, QuestionRecord
from ponder.behaviour.stats import Bin, auroc, ece, paired, reliability, wilson
from ponder.learning.drr.replay import PolicyRun, ScoredQuestion, score_collection, sweep
from ponder.learning.drr.train import max_tokens_of
from ponder.stopping.model import DM


def _mean_lp(lp: Sequence[float]) -> float:
    return sum(lp) / len(lp) if lp else -10.0


def _platt(x: Sequence[float], y: Sequence[bool]) -> tuple[float, float] | None:
    if len(set(y)) < 2:
        return None
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    m = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(x).reshape(-1, 1), list(y))
    return float(m.coef_[0][0]), float(m.intercept_[0])


def _apply(ab: tuple[float, float] | None, x: Sequence[float]) -> list[float] | None:
    if ab is None:
        return None
    a, b = ab
    return [1 / (1 + math.exp(-max(-50.0, min(50.0, a * v + b)))) for v in x]


def _final_rows(
    scored: Sequence[ScoredQuestion],
) -> tuple[list[bool], list[float], list[float], list[float | None]]:
    y, dm, lp, crit = [], [], [], []
    for q in scored:
        for t in q.traces:
            st = t.states[-1]
            y.append(st.correct)
            dm.append(t.p[-1])
            lp.append(_mean_lp(t.sample.lp))
            crit.append(t.sample.critique_p_yes)
    return y, dm, lp, crit


def _judge(name: str, y: Sequence[bool], p: Sequence[float], raw: Sequence[float] | None = None):
    return {
        "judge": name,
        "n": len(y),
        "auroc": auroc(y, raw if raw is not None else p),
        "ece": ece(y, p),
    }


def judge_table(
    dm: DM, scored: Sequence[ScoredQuestion], train: Sequence[QuestionRecord] | None
) -> tuple[list[dict[str, Any]], dict[str, tuple[list[bool], list[float]]]]:
    """AUROC/ECE at final answers (where self-critique exists) and at every checkpoint."""
    rows: list[dict[str, Any]] = []
    curves: dict[str, tuple[list[bool], list[float]]] = {}
    y, p_dm, lp, crit = _final_rows(scored)
    has = [i for i, c in enumerate(crit) if c is not None]
    yc = [y[i] for i in has]
    rows.append({"at": "final answers", **_judge("DM", yc, [p_dm[i] for i in has])})
    lpc = [lp[i] for i in has]
    rows.append(
        {"at": "final answers", **_judge("mean logprob (exp)", yc, [math.exp(v) for v in lpc])}
    )
    cc = [float(crit[i]) for i in has]  # type: ignore[arg-type]
    rows.append({"at": "final answers", **_judge("self-critique P(yes)", yc, cc)})
    curves["DM"] = (yc, [p_dm[i] for i in has])
    curves["self-critique P(yes)"] = (yc, cc)
    curves["mean logprob (exp)"] = (yc, [math.exp(v) for v in lpc])
    if train:
        ty, tlp, tcrit = [], [], []
        for tq in train:
            for s in tq.samples:
                if not s.error and s.critique_p_yes is not None:
                    ty.append(s.correct)
                    tlp.append(_mean_lp(s.lp))
                    tcrit.append(s.critique_p_yes)
        for name, tx, x in (("mean logprob", tlp, lpc), ("self-critique", tcrit, cc)):
            cal = _apply(_platt(tx, ty), x)
            if cal is not None:
                rows.append(
                    {"at": "final answers", **_judge(f"{name} (Platt on train)", yc, cal, x)}
                )
    # every checkpoint: DM vs mean logprob so far
    ay, ap, alp = [], [], []
    for q in scored:
        for t in q.traces:
            for st, p in zip(t.states, t.p, strict=True):
                ay.append(st.correct)
                ap.append(p)
                alp.append(math.exp(_mean_lp(st.state.lp)))
    rows.append({"at": "all checkpoints", **_judge("DM", ay, ap)})
    rows.append({"at": "all checkpoints", **_judge("mean logprob (exp)", ay, alp)})
    return rows, curves


def policy_table(runs: Sequence[PolicyRun]) -> list[dict[str, Any]]:
    base = {
        "sequential": next(r for r in runs if r.policy == "full"),
        "parallel": max((r for r in runs if r.policy == "fixed"), key=lambda r: r.param or 0),
    }
    out = []
    for r in runs:
        b = base[r.family]
        k = sum(u.correct for u in r.units)
        lo, hi = wilson(k, len(r.units))
        pr = paired([u.correct for u in r.units], [u.correct for u in b.units])
        out.append(
            {
                "family": r.family,
                "policy": r.label,
                "units": len(r.units),
                "accuracy": r.accuracy,
                "wilson95": [lo, hi],
                "baseline": b.label,
                "won": pr.won,
                "lost": pr.lost,
                "mcnemar_p": pr.p_value,
                "mean_tokens": r.mean_tokens,
                "token_saving": 1 - r.mean_tokens / b.mean_tokens if b.mean_tokens else 0.0,
            }
        )
    return out


def best_at_baseline(table: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The cheapest parallel stop policy whose accuracy reaches fixed maj@k's."""
    par = [r for r in table if r["family"] == "parallel"]
    if not par:
        return None
    target = next(r for r in par if r["policy"] == r["baseline"])
    ok = [
        r
        for r in par
        if not r["policy"].startswith("fixed") and r["accuracy"] >= target["accuracy"] - 1e-9
    ]
    if not ok:
        return {"baseline": target["policy"], "reached": False}
    best = min(ok, key=lambda r: r["mean_tokens"])
    return {"baseline": target["policy"], "reached": True, **best}


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _fmt_judges(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = [f"{'at':<16} {'judge':<34} {'n':>5} {'AUROC':>7} {'ECE':>7}"]
    for r in rows:
        a = "n/a" if r["auroc"] is None else f"{r['auroc']:.3f}"
        e = "n/a" if r["ece"] is None else f"{r['ece']:.3f}"
        out.append(f"{r['at']:<16} {r['judge']:<34} {r['n']:>5} {a:>7} {e:>7}")
    return out


def _fmt_policies(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = [
        f"{'family':<10} {'policy':<26} {'n':>4} {'acc':>6} {'95% Wilson':>15} "
        f"{'won/lost vs base':>18} {'tokens':>8} {'saving':>7}"
    ]
    for r in rows:
        lo, hi = r["wilson95"]
        out.append(
            f"{r['family']:<10} {r['policy']:<26} {r['units']:>4} {r['accuracy']:>6.3f} "
            f"[{lo:.3f},{hi:.3f}] {r['won']:>4}/{r['lost']:<4} {r['baseline']:<8} "
            f"{r['mean_tokens']:>8.1f} {r['token_saving']:>6.0%}"
        )
    return out


def plot_reliability(
    curves: dict[str, tuple[list[bool], list[float]]],
    path: Path,
    *,
    title: str = "Reliability at final answers (held-out questions)",
    labels: tuple[str, str] = ("predicted P(correct)", "observed accuracy"),
    size: float = 5.0,
    fontsize: int = 8,
) -> None:
    """A reliability diagram (one curve per judge, ECE in its label) saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(size, size))
    ax.plot([0, 1], [0, 1], ":", color="gray", label="perfect calibration")
    for name, (y, p) in curves.items():
        bins: list[Bin] = reliability(y, p)
        e = ece(y, p)
        ax.plot(
            [b.mean_p for b in bins],
            [b.accuracy for b in bins],
            "o-",
            label=f"{name} (ECE {e:.3f})" if e is not None else name,
        )
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    ax.legend(fontsize=fontsize)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _plot_curves(runs: Sequence[PolicyRun], family: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    names: list[str] = []
    for r in runs:
        if r.family == family and r.policy not in names:
            names.append(r.policy)
    for name in names:
        pts = sorted(
            ((r.mean_tokens, r.accuracy, r.param) for r in runs if r.policy == name),
            key=lambda t: t[0],
        )
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name, markersize=4)
        for x, yv, param in pts:
            if param is not None:
                ax.annotate(f"{param:g}", (x, yv), fontsize=6, alpha=0.7)
    ax.set_xlabel(
        "mean generated tokens per " + ("trace" if family == "sequential" else "question")
    )
    ax.set_ylabel("accuracy")
    ax.set_title(f"{family} stop policies: accuracy vs tokens (replay)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def evaluate(
    dm: DM,
    test_manifest: Manifest,
    test_records: Sequence[QuestionRecord],
    out_dir: str | Path,
    *,
    train_records: Sequence[QuestionRecord] | None = None,
    allow_other_reasoner: bool = False,
    plots: bool = True,
    hidden: HiddenStates | None = None,
) -> dict[str, Any]:
    """Judge table, policy sweep, best saving; writes the report files (see module doc).
    ``hidden``: the test collection's hidden-state sidecar, for a DM trained with ``hidden``
    (without it such a DM judges with its fallback scorer)."""
    dm.check_reasoner(test_manifest, allow_other_reasoner)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    scored = score_collection(dm, test_records, max_tokens_of(test_manifest), hidden)
    judges, curves = judge_table(dm, scored, train_records)
    runs = sweep(dm, scored)
    table = policy_table(runs)
    best = best_at_baseline(table)
    report: dict[str, Any] = {
        "test": {"questions": len(scored), "traces": sum(len(q.traces) for q in scored)},
        "dm": {"created": dm.created, "train": dm.train, "cv": dm.checkpoint.cv},
        "judges": judges,
        "policies": table,
        "best_at_baseline": best,
    }
    cv = dm.checkpoint.cv
    lines = [
        f"test: {report['test']['questions']} questions, {report['test']['traces']} traces",
        f"DM: trained on {dm.train.get('questions')} questions ({dm.manifest.model.name}); "
        f"grouped-CV AUROC on train: logistic {_f(cv.get('auroc_logistic'))}, "
        f"gbt {_f(cv.get('auroc_gbt'))} -> {cv.get('chosen')}",
        "",
        "Judges (P(current answer correct)):",
        *_fmt_judges(judges),
        "",
        "Policies (sequential units = traces vs full trace; parallel units = questions vs "
        "fixed maj@k):",
        *_fmt_policies(table),
        "",
    ]
    if best and best.get("reached"):
        lines.append(
            f"best stop policy at {best['baseline']}'s accuracy: {best['policy']} "
            f"(acc {best['accuracy']:.3f}, {best['mean_tokens']:.1f} tokens/question, "
            f"{best['token_saving']:.0%} fewer tokens)"
        )
    elif best:
        lines.append(f"no stop policy reached {best['baseline']}'s accuracy")
    text = "\n".join(lines)
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "report.txt").write_text(text + "\n", encoding="utf-8")
    if plots:
        plot_reliability(curves, out / "reliability.png")
        _plot_curves(runs, "sequential", out / "sequential.png")
        _plot_curves(runs, "parallel", out / "parallel.png")
    report["text"] = text
    return report
