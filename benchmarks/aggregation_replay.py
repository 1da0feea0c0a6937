"""Every aggregator and the early-termination rule on ONE set of collected samples, no model.

Reads two behaviour collections (``ponder collect``): TRAIN (questions the learned aggregator is
fitted on) and TEST (the questions reported on; never train questions). On each test question's
first k samples it runs majority, weighted (mean token logprob), confidence-filtered voting for
every measure and η, the learned aggregator (all features, and the ``live`` subset a ``sample``
chain provides), DeepConf early termination replayed (accuracy and reasoning tokens actually
generated), and the oracle. Every accuracy has its 95% Wilson interval and a paired comparison
with majority on the same questions (won / lost, exact McNemar p). Writes OUT/summary.md,
OUT/summary.json, OUT/per_question.jsonl and OUT/accuracy_vs_tokens.png.

    python benchmarks/aggregation_replay.py \\
        --train ~/.cache/ponder/behaviour/gsm8k-train-48 \\
        --test ~/.cache/ponder/behaviour/gsm8k-test-100 --out results/aggregation_replay

Tokens are the reasoning traces' generated (completion) tokens; the collector's probes and
self-critique calls are not counted (they are measurement, not part of any method). SSA is
measured by its own benchmark (it needs a model).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.aggregator import ConfidenceFiltered, LearnedAggregator, Majority, Weighted
from ponder.aggregator.base import Aggregator
from ponder.behaviour.outcomes import sample_outcomes
from ponder.behaviour.records import Manifest, QuestionRecord, read_collection
from ponder.behaviour.stats import paired, wilson
from ponder.errors import PonderError
from ponder.evaluation.early_stop_replay import replay_early_stop
from ponder.grading import is_equivalent
from ponder.learning.learned.train import train_artifact
from ponder.protocol.actions import Task
from ponder.strategies.deepconf import DeepConfSample

MEASURES = ("mean", "lowest_group", "bottom10", "tail")
KEEPS = (0.1, 0.5, 0.9)


@dataclass
class Method:
    name: str
    correct: dict[str, bool]
    tokens: dict[str, int]
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def check_collections(
    train: tuple[Manifest, list[QuestionRecord]], test: tuple[Manifest, list[QuestionRecord]]
) -> None:
    (tm, tr), (sm, te) = train, test
    for label, (m, recs) in {"train": train, "test": test}.items():
        expected = m.dataset.first or m.dataset.rows
        if len(recs) < expected:
            print(
                f"warning: the {label} collection has {len(recs)} of {expected} questions "
                "(still being collected?)",
                file=sys.stderr,
            )
    overlap = {r.question for r in tr} & {r.question for r in te}
    if overlap:
        sys.exit(f"error: {len(overlap)} test questions are also in the train collection")
    if not tm.same_reasoner(sm):
        print("warning: train and test collections come from different reasoners", file=sys.stderr)


def aggregate(
    name: str, agg: Aggregator, records: Sequence[QuestionRecord], sm: Manifest, k: int
) -> Method:
    correct, tokens, p_list = {}, {}, []
    for r in records:
        samples = sample_outcomes(r, sm)[:k]
        tokens[r.id] = sum(s.tokens for s in r.samples[:k])
        try:
            out = agg.choose(Task(r.question), samples)
            answer, conf = out.answer, out.confidence
        except PonderError:
            answer, conf = None, None
        correct[r.id] = is_equivalent(answer, r.gold)
        if conf is not None:
            p_list.append((conf, correct[r.id]))
    m = Method(name, correct, tokens)
    if isinstance(agg, LearnedAggregator) and p_list:
        m.extra["mean_p_correct"] = sum(p for p, _ in p_list) / len(p_list)
        m.extra["brier"] = sum((p - c) ** 2 for p, c in p_list) / len(p_list)
    return m


def by_rule(
    name: str, pick: Callable[[QuestionRecord], bool], recs: Sequence[QuestionRecord], k: int
) -> Method:
    return Method(
        name,
        {r.id: pick(r) for r in recs},
        {r.id: sum(s.tokens for s in r.samples[:k]) for r in recs},
    )


def run(args: argparse.Namespace) -> int:
    train = read_collection(Path(args.train).expanduser())
    test = read_collection(Path(args.test).expanduser())
    check_collections(train, test)
    (tm, tr), (sm, te) = train, test
    k = args.k
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods: list[Method] = []
    t0 = time.perf_counter()
    methods.append(aggregate(f"majority@{k}", Majority(), te, sm, k))
    methods.append(aggregate(f"weighted@{k} (mean logprob)", Weighted(), te, sm, k))
    for measure in MEASURES:
        for keep in KEEPS:
            agg = ConfidenceFiltered(measure=measure, keep=keep)
            methods.append(aggregate(f"conf-filter {measure} η={keep:.0%}", agg, te, sm, k))
    for feats in ("all", "live"):
        art = train_artifact(tm, tr, feats)
        path = art.save(out / f"learned-{feats}.json")
        agg = LearnedAggregator(artifact=str(path))
        agg.check_manifest(sm)  # refuses a test collection of another reasoner
        m = aggregate(f"learned ({feats} features)", agg, te, sm, k)
        m.extra.update(
            {
                "cv_pick_accuracy_train": art.training["cv_pick_accuracy"],
                "C": art.training["C"],
                "artifact_bytes": path.stat().st_size,
            }
        )
        methods.append(m)
    for warmup in args.warmup:
        for pct, label in ((10.0, "DeepConf-high"), (90.0, "DeepConf-low")):
            rule = DeepConfSample(
                k=k,
                warmup=warmup,
                percentile=pct,
                segment=args.segment,
                window=args.window,
                consensus=args.consensus,
                batch=args.batch,
            )
            rep = replay_early_stop(te, rule)
            m = Method(
                f"early stop {label} (p{pct:.0f}, warm-up {warmup})",
                {r.id: r.correct for r in rep},
                {r.id: r.generated_tokens for r in rep},
            )
            m.extra.update(
                {
                    "mean_drawn": sum(r.drawn for r in rep) / len(rep),
                    "mean_stopped": sum(r.stopped for r in rep) / len(rep),
                }
            )
            methods.append(m)
    methods.append(
        by_rule(
            "one sample (the first)",
            lambda r: bool(r.samples) and r.samples[0].correct,
            te,
            1,
        )
    )
    methods.append(
        by_rule(f"oracle pass@{k}", lambda r: any(s.correct for s in r.samples[:k]), te, k)
    )
    if all(r.greedy is not None for r in te):
        methods.append(
            Method(
                "greedy",
                {r.id: bool(r.greedy and r.greedy.correct) for r in te},
                {r.id: r.greedy.tokens if r.greedy else 0 for r in te},
            )
        )
    rows = table_rows(methods)
    md = format_rows(rows, len(te), k, sm)
    print(md)
    print(f"({time.perf_counter() - t0:.1f} s)")
    (out / "summary.md").write_text(md + "\n")
    (out / "summary.json").write_text(json.dumps(rows, indent=2))
    with (out / "per_question.jsonl").open("w") as f:
        for r in te:
            f.write(json.dumps({"id": r.id, **{m.name: m.correct[r.id] for m in methods}}) + "\n")
    if not args.no_plot:
        print(f"plot: {plot(rows, out / 'accuracy_vs_tokens.png', len(te), k)}")
    return 0


def table_rows(methods: Sequence[Method]) -> list[dict[str, Any]]:
    base = methods[0]
    base_tokens = sum(base.tokens.values()) / len(base.tokens)
    rows = []
    for m in methods:
        n = len(m.correct)
        c = sum(m.correct.values())
        lo, hi = wilson(c, n)
        tok = sum(m.tokens.values()) / n
        pr = paired(m.correct, base.correct)
        rows.append(
            {
                "method": m.name,
                "n": n,
                "correct": c,
                "accuracy": c / n,
                "ci95": [lo, hi],
                "tokens_per_q": tok,
                "tokens_vs_majority": tok / base_tokens if base_tokens else None,
                "won": pr.won,
                "lost": pr.lost,
                "p_value": pr.p_value,
                **m.extra,
            }
        )
    return rows


def format_rows(rows: Sequence[dict[str, Any]], n: int, k: int, sm: Manifest) -> str:
    lines = [
        f"{n} test questions, {k} samples each, reasoner {sm.model.name}; "
        "paired columns compare with the first row on the same questions",
        "",
        "| method | accuracy | 95% CI | generated tokens/q | vs majority tokens | won | lost | "
        "McNemar p | notes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        notes = []
        if "mean_p_correct" in r:
            notes.append(
                f"mean P(correct) {r['mean_p_correct']:.2f}, Brier {r['brier']:.3f}, "
                f"train CV {r['cv_pick_accuracy_train']:.1%}"
            )
        if "mean_drawn" in r:
            notes.append(f"{r['mean_drawn']:.1f} traces drawn, {r['mean_stopped']:.1f} stopped")
        ratio = r["tokens_vs_majority"]
        lines.append(
            f"| {r['method']} | {r['accuracy']:.1%} | [{100 * r['ci95'][0]:.1f}, "
            f"{100 * r['ci95'][1]:.1f}] | {r['tokens_per_q']:.0f} | "
            f"{'' if ratio is None else f'{ratio:.0%}'} | {r['won']} | {r['lost']} | "
            f"{r['p_value']:.2g} | {'; '.join(notes)} |"
        )
    return "\n".join(lines)


def plot(rows: Sequence[dict[str, Any]], path: Path, n: int, k: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 5.6), dpi=120)
    top = 0.0
    for r in rows:
        if r["method"].startswith("conf-filter") and "η=50%" in r["method"]:
            continue  # keep the plot readable: η=10% and 90% carry the story
        x, y = r["tokens_per_q"], 100 * r["accuracy"]
        lo, hi = 100 * r["ci95"][0], 100 * r["ci95"][1]
        top = max(top, hi)
        kind = r["method"].split()[0]
        marker = {"early": "s", "learned": "D", "oracle": "*", "conf-filter": "^"}.get(kind, "o")
        label = f"{r['method']}: {y:.0f}%"
        ax.errorbar(
            [x],
            [y],
            yerr=[[max(0.0, y - lo)], [max(0.0, hi - y)]],
            fmt=marker,
            ms=6,
            capsize=3,
            lw=1,
            label=label,
        )
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False)
    ax.set_ylim(0, min(100.0, top * 1.1 + 2))
    ax.set_xlim(left=0)
    ax.set_xlabel("reasoning tokens generated per question")
    ax.set_ylabel("accuracy (%), 95% Wilson interval")
    ax.set_title(f"Aggregation replay: {n} questions, {k} samples each")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="behaviour collection of train questions")
    p.add_argument("--test", required=True, help="behaviour collection of test questions")
    p.add_argument("--out", default="results/aggregation_replay")
    p.add_argument("-k", "--k", type=int, default=8, help="samples per question (default 8)")
    p.add_argument(
        "--warmup", type=int, nargs="+", default=[2, 4], help="early stop: warm-up traces (each)"
    )
    p.add_argument("--segment", type=int, default=32, help="early stop: tokens per segment")
    p.add_argument("--window", type=int, default=64, help="early stop: window tokens")
    p.add_argument("--batch", type=int, default=2, help="early stop: traces drawn at once")
    p.add_argument("--consensus", type=float, default=0.95, help="early stop: stop drawing at")
    p.add_argument("--no-plot", action="store_true")
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
