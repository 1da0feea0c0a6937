"""Comparisons a reader can trust: Wilson intervals, exact McNemar, paired rows, the plot's axis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ponder.behaviour.stats import accuracy_text, auroc, ece, mcnemar_exact, paired, wilson
from ponder.cli import main
from ponder.evaluation.summary import add_paired, format_table, summarize

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_wilson_interval_known_values():
    lo, hi = wilson(30, 100)
    assert (round(100 * lo, 1), round(100 * hi, 1)) == (21.9, 39.6)
    assert wilson(0, 20)[0] == 0.0 and wilson(0, 20)[1] == pytest.approx(0.161, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)
    assert accuracy_text([True, False]) == "50.0% [9.5, 90.5]"


def test_mcnemar_exact_two_sided():
    assert mcnemar_exact(13, 5) == pytest.approx(0.0963, abs=1e-4)
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(6, 0) == pytest.approx(2 / 64)
    pr = paired({"a": True, "b": False, "c": True, "x": True}, {"a": False, "b": True, "c": True})
    assert (pr.n, pr.won, pr.lost) == (3, 1, 1) and pr.p_value == 1.0


def test_paired_over_maps_or_aligned_sequences():
    seq = paired([True, True, False, False], [False, True, True, False])
    by_id = paired(
        dict(zip("abcd", [True, True, False, False], strict=True)),
        dict(zip("abcd", [False, True, True, False], strict=True)),
    )
    assert seq == by_id and (seq.n, seq.won, seq.lost, seq.p_value) == (4, 1, 1, 1.0)
    with pytest.raises(ValueError):
        paired([True], [True, False])
    with pytest.raises(TypeError):
        paired({"a": True}, [True])


def test_auroc_is_the_exact_rank_statistic_with_ties():
    import random
    from fractions import Fraction

    from sklearn.metrics import roc_auc_score

    rng = random.Random(0)
    for _ in range(50):
        p = [rng.choice([0.0, 0.25, 0.5, 0.75, 1.0]) for _ in range(40)]
        y = [rng.random() < 0.4 for _ in range(40)]
        pos = [s for s, t in zip(p, y, strict=True) if t]
        neg = [s for s, t in zip(p, y, strict=True) if not t]
        half = Fraction(1, 2)
        u = sum(1 if a > b else half if a == b else 0 for a in pos for b in neg)
        exact = float(u / (len(pos) * len(neg)))
        assert auroc(y, p) == exact  # bit for bit
        assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert auroc([True, True], [0.1, 0.2]) is None and auroc([], []) is None
    assert ece([], []) is None and ece([True, False], [1.0, 0.0]) == 0.0


def _recs(name, flags):
    return [{"id": str(i), "correct": f, "total_tokens": 10} for i, f in enumerate(flags)]


def test_summary_rows_carry_interval_and_paired_comparison():
    base = _recs("maj", [True, False, False, True])
    other = _recs("new", [True, True, True, False])
    rows = [summarize("maj", base), summarize("new", other)]
    add_paired(rows, {"maj": base, "new": other}, "maj")
    assert rows[1]["vs_baseline"]["won"] == 2 and rows[1]["vs_baseline"]["lost"] == 1
    assert "vs_baseline" not in rows[0]
    table = format_table(rows)
    assert "95% CI (Wilson)" in table and "+2/-1 (p=1) vs maj" in table


def test_cli_offline_paired_baseline_and_plot_from_zero(tmp_path, capsys):
    rc = main(
        [
            "eval",
            "--offline",
            str(DATA / "aggregation" / "math_cot_100.jsonl"),
            "-n",
            "20",
            "--aggregator",
            "majority",
            "--aggregator",
            "best_of_n",
            "--baseline",
            "best_of_n",
            "--out",
            str(tmp_path),
            "--no-progress",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "vs best_of_n" in out
    rows = {r["config"]: r for r in json.loads((tmp_path / "summary.json").read_text())}
    assert rows["majority"]["vs_baseline"]["n"] == 20
    lo, hi = rows["majority"]["ci95"]
    assert lo <= rows["majority"]["accuracy"] <= hi
    assert (
        main(
            [
                "eval",
                "--offline",
                str(DATA / "aggregation" / "math_cot_100.jsonl"),
                "-n",
                "2",
                "--aggregator",
                "majority",
                "--aggregator",
                "best_of_n",
                "--baseline",
                "nope",
                "--out",
                str(tmp_path / "x"),
                "--no-progress",
            ]
        )
        == 2
    )


def test_plot_axis_starts_at_zero(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from ponder.evaluation import plot

    rows = [
        summarize("a", _recs("a", [True] * 9 + [False])),
        summarize("b", _recs("b", [True] * 8 + [False] * 2)),
    ]
    rows[1]["mean_total_tokens"] = 80
    seen = {}
    orig = plt.Figure.savefig

    def spy(self, *a, **k):
        seen["ylim"] = self.axes[0].get_ylim()
        return orig(self, *a, **k)

    plt.Figure.savefig = spy  # type: ignore[method-assign]
    try:
        plot.plot_scaling(rows, tmp_path / "s.png")
    finally:
        plt.Figure.savefig = orig  # type: ignore[method-assign]
    assert seen["ylim"][0] == 0
