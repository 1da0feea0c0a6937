"""SSA on ONE behaviour collection's samples, so it compares with majority/oracle/learned exactly.

Use this to measure the ``ssa`` aggregator (any aggregator model: 0.5B, 1.5B, a trained one) on
candidate sets that were already collected (``ponder collect``), the same sets
``benchmarks/aggregation_replay.py`` scores majority, weighted and learned on. For each question
of ``--test`` the first ``-k`` samples become the request ``SSA(...).request(task, outcomes)``
builds (the very prompt of a live ``sample`` + ``ssa`` run, and of ``ponder ssa data``'s training
examples for that set), sent through a ``Session`` of the chain file ``-c`` (its ``aggregator``
role). The answer is extracted and graded as the collector grades (``is_equivalent`` against the
gold answer); where SSA states no answer, majority vote decides, as in the aggregator, and the
benchmark counts how often. Majority@k and oracle@k come from the same samples.

Serve the aggregator model with room for k candidates in each slot (about 3,000 tokens of prompt
and answer at k=8, so ``-c`` >= 4096 x slots; the collection server's 1,024 per slot is too small)::

    LS=$(ls -d ~/.cache/ponder/llama-server/*/ | head -1)llama-server
    $LS -m ~/.cache/ponder/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
        -np 4 -c 16384 -t 2 --host 127.0.0.1 --port 8092           # arm ssa-0.5b
    $LS -m ~/.cache/ponder/models/qwen2.5-coder-1.5b-instruct.gguf \\
        -np 4 -c 16384 -t 2 --host 127.0.0.1 --port 8093           # arm ssa-1.5b

One arm per chain file (rerun the same line to resume; ``--first N`` for the first N questions)::

    python benchmarks/ssa_eval.py --test ~/.cache/ponder/behaviour/gsm8k-test-100 \\
        -c benchmarks/ssa_eval_0.5b.yaml --label ssa-0.5b --out results/ssa_eval
    python benchmarks/ssa_eval.py --test ~/.cache/ponder/behaviour/gsm8k-test-100 \\
        -c benchmarks/ssa_eval_1.5b.yaml --label ssa-1.5b --out results/ssa_eval
    # every arm under OUT in one table, on their common questions (plus the replay's learned rows)
    python benchmarks/ssa_eval.py --summarize-only --out results/ssa_eval \\
        --replay results/aggregation_replay/per_question.jsonl

Samples from another sampler model are just another ``--test`` collection (and another label).
A smoke test fits the collection server (1,024 tokens a slot) with shorter candidates::

    python benchmarks/ssa_eval.py --test ~/.cache/ponder/behaviour/gsm8k-test-100 \
        -c benchmarks/ssa_eval_0.5b.yaml --label ssa-0.5b --out /tmp/ssa_eval_smoke --first 3 \
        --max-candidate-tokens 64 --max-tokens 150 --concurrency 2

Writes, per arm, OUT/LABEL/per_question.jsonl (one line per question, appended and fsynced as it
finishes; done ids are skipped on rerun, a torn last line is cut), settings.json (a rerun with
other SSA settings, k or collection is refused), runs.jsonl (each invocation's wall time and
tokens), summary.md and summary.json: n, SSA accuracy with its 95% Wilson interval, majority@k
and oracle@k on the same questions, SSA vs majority paired (won / lost, exact McNemar p), the
majority fallbacks, the aggregator's prompt / completion tokens (the Session's usage) and the
wall time. A question whose aggregator call failed (server down, context too small) is not
written, so a rerun retries it. ``--summarize-only`` writes OUT/summary.md and summary.json;
``--replay`` adds aggregation_replay's methods named by ``--replay-match`` (default: learned) on
the same questions; run that replay on the same ``--test`` collection and k.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ponder.aggregator import SSA, Majority
from ponder.behaviour.records import Manifest, QuestionRecord, read_collection
from ponder.behaviour.stats import paired, wilson
from ponder.config import ChainConfig
from ponder.errors import InputError, PonderError
from ponder.evaluation.offline import Replay
from ponder.evaluation.records import RecordWriter, read_records
from ponder.grading import is_equivalent
from ponder.learning.drr.replay import score_collection
from ponder.learning.ssa.data import candidate_outcomes
from ponder.orchestrator.engine import Orchestrator
from ponder.orchestrator.session import Session
from ponder.protocol.actions import Outcome, Task
from ponder.stopping.model import DM, load_dm

FORMAT = "ponder.ssa-eval/1"
PER_QUESTION = "per_question.jsonl"
SETTINGS = "settings.json"
RUNS = "runs.jsonl"
CALL_FAILED = "the aggregator call failed"  # SSA's ``ssa_fallback`` reason for a failed call


class AggregatorCallFailed(PonderError):
    """The SSA request itself failed (after retries): the question is not recorded."""


def first_k(rec: QuestionRecord, k: int, judge: DM | None = None) -> list[Outcome]:
    """The first ``k`` collected samples as candidates, as ``ponder ssa data`` builds them; with
    a probe-free ``judge``, each carries its P(correct) at the trace's end as ``data["p"]`` (what
    ``drr_sample``/``drr_bayes`` with ``probes: false`` hand SSA's ``judge_scores``)."""
    if len(rec.samples) < k:
        raise InputError(f"question {rec.id} has {len(rec.samples)} samples, fewer than k={k}")
    outs = candidate_outcomes(rec, list(range(k)))
    if judge is not None:  # replay's scoring: the one-call trace's end (a failed sample: none)
        scored = score_collection(judge, [rec], judge.max_tokens)
        p = {t.sample.seed: t.p[-1] for q in scored for t in q.traces}
        for o, smp in zip(outs, rec.samples[:k], strict=True):
            if smp.seed in p:
                o.data["p"] = p[smp.seed]
    return outs


def load_judge(name: str) -> DM:
    """The ``--judge-scores`` DM: probe-free (the collections SSA reads have no probe answers
    at every checkpoint); hidden-state features fall back as they do live."""
    dm = load_dm(name).without_hidden()
    if not dm.probe_free:
        raise InputError(
            f"--judge-scores {name}: a probed DM needs probe answers; give a probe-free DM "
            "(e.g. probe-free, ponder drr train --no-probes)"
        )
    return dm


async def eval_question(
    session: Orchestrator, ssa: SSA, rec: QuestionRecord, k: int, judge: DM | None = None
) -> dict[str, Any]:
    """One question's line: SSA's graded answer next to majority@k and oracle@k of the same set."""
    outs = first_k(rec, k, judge)
    task = Task(rec.question)
    answered = any(o.answer is not None for o in outs)
    majority = Majority().choose(task, outs).answer if answered else None
    row: dict[str, Any] = {
        "id": rec.id,
        "gold": rec.gold,
        "samples": [o.answer for o in outs],
        "majority": majority,
        "majority_correct": is_equivalent(majority, rec.gold),
        "oracle": any(s.correct for s in rec.samples[:k]),
        "sample_tokens": sum(s.tokens for s in rec.samples[:k]),
    }
    if judge is not None:
        row["judge_p"] = [round(o.data["p"], 4) if "p" in o.data else None for o in outs]
    if not answered:  # SSA asks no model about an empty set (and majority has nothing to vote)
        return row | {"answer": None, "correct": False, "fallback": "no_candidates", "shown": []}
    _, shown = ssa.request(task, outs)
    result = await session.run(Replay(aggregator=ssa, samples=tuple(outs)), task)
    notes = [e for e in result.trace.of_type("decision") if e.get("event") == "ssa_fallback"]
    if notes and str(notes[0].get("why", "")).startswith(CALL_FAILED):
        raise AggregatorCallFailed(str(notes[0]["why"]))
    done = result.trace.of_type("completion")
    choice = done[-1]["choices"][0] if done else {}
    u = result.usage
    return row | {
        "answer": result.answer,
        "correct": is_equivalent(result.answer, rec.gold),
        "fallback": "no_answer" if notes else None,
        "shown": shown,
        "text": choice.get("text", ""),
        "finish_reason": choice.get("finish_reason"),
        "prompt_tokens": u.prompt_tokens,
        "cached_prompt_tokens": u.cached_prompt_tokens,
        "completion_tokens": u.completion_tokens,
        "wall_s": round(u.wall_time_s, 3),
    }


@dataclass
class ArmRun:
    """What one invocation did for an arm (the arm's totals are in its per_question.jsonl)."""

    done_before: int
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["failed"] = len(self.failed)
        return d


async def run_arm(
    session: Orchestrator,
    records: Sequence[QuestionRecord],
    out: Path,
    ssa: SSA,
    k: int,
    *,
    concurrency: int = 4,
    progress: bool = True,
    judge: DM | None = None,
) -> ArmRun:
    """Evaluate the questions not yet in ``out``/per_question.jsonl, ``concurrency`` at a time."""
    writer = RecordWriter(out / PER_QUESTION)  # cuts a torn last line first
    ids = {r.id for r in records}
    rows = [r for r in read_records(out / PER_QUESTION) if r["id"] in ids]
    done = {r["id"] for r in rows}
    pending = [r for r in records if r.id not in done]
    run = ArmRun(done_before=len(done))
    tally = {"n": len(rows), "correct": sum(bool(r["correct"]) for r in rows)}
    gate = asyncio.Semaphore(max(1, concurrency))
    bar = _bar(len(records), run.done_before, progress)
    t0 = time.perf_counter()

    async def one(rec: QuestionRecord) -> None:
        async with gate:
            try:
                row = await eval_question(session, ssa, rec, k, judge)
            except PonderError as exc:
                run.failed.append((rec.id, f"{type(exc).__name__}: {exc}"))
                bar.update(1)
                return
        writer.write(row)  # synchronous: lines never interleave
        run.written += 1
        run.prompt_tokens += row.get("prompt_tokens", 0)
        run.completion_tokens += row.get("completion_tokens", 0)
        tally["n"] += 1
        tally["correct"] += bool(row["correct"])
        elapsed = time.perf_counter() - t0
        bar.update(1)
        bar.set_postfix(
            acc=f"{tally['correct'] / tally['n']:.1%}",
            tok_s=f"{run.completion_tokens / elapsed:.1f}" if elapsed else "0",
            failed=len(run.failed),
        )

    try:
        await asyncio.gather(*(one(r) for r in pending))
    finally:
        run.wall_s = round(time.perf_counter() - t0, 2)
        writer.close()
        bar.close()
    return run


def _bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc="ssa-eval", unit="q", disable=not enabled)


# -- settings (what a rerun must match) --------------------------------------------------------


def arm_settings(
    collection: Path, manifest: Manifest, k: int, ssa: SSA, cfg: ChainConfig
) -> dict[str, Any]:
    backend = cfg.roles.get(ssa.role, cfg.backend)
    return {
        "format": FORMAT,
        "collection": str(collection),
        "sampler": manifest.model.model_dump(),
        "dataset_sha256": manifest.dataset.sha256,
        "collection_settings": manifest.settings,
        "k": k,
        "ssa": ssa.model_dump(),
        "aggregator_backend": backend.model_dump(),
    }


MUST_MATCH = ("sampler", "dataset_sha256", "collection_settings", "k", "ssa", "judge")


def check_settings(out: Path, new: dict[str, Any]) -> None:
    """Write ``settings.json``, or refuse a rerun whose SSA settings, k or samples differ."""
    path = out / SETTINGS
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        diffs = [key for key in MUST_MATCH if old.get(key) != new.get(key)]
        if diffs:
            raise InputError(
                f"{out} was evaluated with other {', '.join(diffs)}: use another --label "
                "(or --out), or the original settings to resume"
            )
        if old.get("aggregator_backend") != new.get("aggregator_backend"):
            print(f"note: {out}: the aggregator backend differs from before", file=sys.stderr)
        return
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(new, indent=2), encoding="utf-8")


# -- summaries ------------------------------------------------------------------------------------


def _acc(flags: Sequence[bool]) -> dict[str, Any]:
    n, c = len(flags), sum(bool(f) for f in flags)
    lo, hi = wilson(c, n)
    return {"correct": c, "accuracy": c / n if n else 0.0, "ci95": [lo, hi]}


def arm_summary(
    label: str,
    rows: Sequence[dict[str, Any]],
    settings: dict[str, Any] | None = None,
    runs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The numbers of one arm on ``rows`` (its per-question lines, or a common subset)."""
    n = len(rows)
    pr = paired(
        {r["id"]: bool(r["correct"]) for r in rows},
        {r["id"]: bool(r["majority_correct"]) for r in rows},
    )
    fallbacks = {
        kind: sum(r.get("fallback") == kind for r in rows)
        for kind in ("no_answer", "no_candidates")
    }
    tok = {key: sum(r.get(key, 0) for r in rows) for key in ("prompt_tokens", "completion_tokens")}
    settings = settings or {}
    return {
        "label": label,
        "n": n,
        "k": settings.get("k"),
        "sampler": (settings.get("sampler") or {}).get("name"),
        "collection": settings.get("collection"),
        "ssa": _acc([r["correct"] for r in rows]),
        "majority": _acc([r["majority_correct"] for r in rows]),
        "oracle": _acc([r["oracle"] for r in rows]),
        "vs_majority": {"won": pr.won, "lost": pr.lost, "p_value": pr.p_value},
        "fallback": fallbacks,
        "truncated_outputs": sum(r.get("finish_reason") == "length" for r in rows),
        "aggregator_tokens": tok,
        "aggregator_tokens_per_q": {key: v / n if n else 0.0 for key, v in tok.items()},
        "sample_tokens_per_q": sum(r.get("sample_tokens", 0) for r in rows) / n if n else 0.0,
        "wall_s": round(sum(r.get("wall_s", 0.0) for r in runs), 1),
        "ssa_settings": settings.get("ssa"),
    }


def _pct(a: dict[str, Any]) -> str:
    lo, hi = a["ci95"]
    return f"{a['accuracy']:.1%} [{100 * lo:.1f}, {100 * hi:.1f}]"


def format_arm(s: dict[str, Any]) -> str:
    k, vs, fb, tq = s["k"], s["vs_majority"], s["fallback"], s["aggregator_tokens_per_q"]
    ssa = s["ssa_settings"] or {}
    return "\n".join(
        [
            f"# {s['label']}: SSA@{k} on {s['n']} questions of {s['collection']} "
            f"(sampler {s['sampler']})",
            "",
            "| method | accuracy [95% Wilson] | won/lost vs majority (McNemar p) |",
            "|---|---|---|",
            f"| SSA@{k} ({s['label']}) | {_pct(s['ssa'])} | "
            f"{vs['won']}/{vs['lost']} ({vs['p_value']:.2g}) |",
            f"| majority@{k} | {_pct(s['majority'])} | – |",
            f"| oracle@{k} | {_pct(s['oracle'])} | |",
            "",
            f"- majority fallbacks: {fb['no_answer']} where SSA stated no answer, "
            f"{fb['no_candidates']} with no answered candidate (no call); "
            f"{s['truncated_outputs']} SSA outputs cut at max_tokens",
            f"- aggregator tokens: prompt {s['aggregator_tokens']['prompt_tokens']:,} "
            f"({tq['prompt_tokens']:.0f}/q), completion "
            f"{s['aggregator_tokens']['completion_tokens']:,} ({tq['completion_tokens']:.0f}/q); "
            f"the samples' own reasoning tokens {s['sample_tokens_per_q']:.0f}/q",
            f"- wall time {s['wall_s']:.0f} s (all invocations); SSA settings: "
            + ", ".join(f"{key}={ssa.get(key)}" for key in SSA_SHOWN),
        ]
    )


SSA_SHOWN = ("max_candidates", "max_candidate_tokens", "max_tokens", "temperature", "seed")


def load_arm(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any], list[dict[str, Any]]]:
    """An arm directory's per-question rows, settings and invocation log."""
    rows = read_records(out / PER_QUESTION)
    sp = out / SETTINGS
    settings = json.loads(sp.read_text(encoding="utf-8")) if sp.is_file() else {}
    return rows, settings, read_records(out / RUNS)


def write_arm_summary(out: Path) -> dict[str, Any]:
    rows, settings, runs = load_arm(out)
    s = arm_summary(out.name, rows, settings, runs)
    (out / "summary.json").write_text(json.dumps(s, indent=2), encoding="utf-8")
    (out / "summary.md").write_text(format_arm(s) + "\n", encoding="utf-8")
    return s


def read_replay(path: Path) -> dict[str, dict[str, bool]]:
    """Every method of an aggregation_replay per_question.jsonl: name -> question id -> correct."""
    methods: dict[str, dict[str, bool]] = {}
    for row in read_records(path):
        for name, value in row.items():
            if name != "id":
                methods.setdefault(name, {})[str(row["id"])] = bool(value)
    return methods


def summarize_all(
    out: Path, replay: Path | None = None, replay_match: Sequence[str] = ("learned",)
) -> tuple[str, dict[str, Any]]:
    """One table of every arm under ``out`` (and replay methods) on their common questions."""
    arms = sorted(p for p in out.iterdir() if (p / PER_QUESTION).is_file())
    if not arms:
        raise InputError(f"no arms under {out} (no */{PER_QUESTION})")
    loaded = {p.name: load_arm(p) for p in arms}
    for p in arms:
        write_arm_summary(p)
    replayed = read_replay(replay) if replay else {}
    extra = {n: f for n, f in replayed.items() if any(m in n for m in replay_match)}
    replay_majority = next((f for n, f in replayed.items() if n.startswith("majority@")), None)
    common = set.intersection(*({r["id"] for r in rows} for rows, _, _ in loaded.values()))
    for flags in extra.values():
        common &= set(flags)
    first = next(iter(loaded))
    base = {r["id"]: bool(r["correct"]) for r in loaded[first][0] if r["id"] in common}
    table: list[dict[str, Any]] = []
    for label, (rows, settings, runs) in loaded.items():
        s = arm_summary(label, [r for r in rows if r["id"] in common], settings, runs)
        mine = {r["id"]: bool(r["correct"]) for r in rows if r["id"] in common}
        pf = paired(mine, base)
        s["vs_first"] = {"won": pf.won, "lost": pf.lost, "p_value": pf.p_value}
        table.append(s)
    for name, flags in extra.items():
        mine = {q: flags[q] for q in common}
        pf = paired(mine, base)
        row = {
            "label": f"replay: {name}",
            "n": len(mine),
            "ssa": _acc(list(mine.values())),
            "vs_first": {"won": pf.won, "lost": pf.lost, "p_value": pf.p_value},
        }
        if replay_majority is not None:
            pm = paired(mine, replay_majority)
            row["vs_majority"] = {"won": pm.won, "lost": pm.lost, "p_value": pm.p_value}
        table.append(row)
    md = format_all(table, first, len(common))
    return md, {"common_questions": len(common), "first": first, "arms": table}


def format_all(table: Sequence[dict[str, Any]], first: str, n: int) -> str:
    lines = [
        f"{n} questions common to every arm; paired columns are on those questions "
        f"(each arm against its own collection's majority, and against {first})",
        "",
        "| arm | sampler | k | accuracy [95% Wilson] | majority@k | oracle@k | vs majority "
        f"| vs {first} | fallbacks (no answer / no candidates) | agg. prompt tok/q "
        "| agg. completion tok/q | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def pair(p: dict[str, Any] | None) -> str:
        return f"{p['won']}/{p['lost']} ({p['p_value']:.2g})" if p else ""

    for s in table:
        if "majority" not in s:  # a replay method: accuracy and the paired column only
            vm = pair(s.get("vs_majority"))
            cells = [s["label"], "", "", _pct(s["ssa"]), "", "", vm, pair(s["vs_first"])]
            lines.append("| " + " | ".join(cells + ["", "", "", ""]) + " |")
            continue
        fb, tq = s["fallback"], s["aggregator_tokens_per_q"]
        cells = [
            s["label"],
            str(s["sampler"]),
            str(s["k"]),
            _pct(s["ssa"]),
            _pct(s["majority"]),
            _pct(s["oracle"]),
            pair(s["vs_majority"]),
            "–" if s["label"] == first else pair(s["vs_first"]),
            f"{fb['no_answer']} / {fb['no_candidates']}",
            f"{tq['prompt_tokens']:.0f}",
            f"{tq['completion_tokens']:.0f}",
            f"{s['wall_s']:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- the command ---------------------------------------------------------------------------------


def build_ssa(args: argparse.Namespace) -> SSA:
    return SSA(
        max_candidates=args.max_candidates,
        max_candidate_tokens=args.max_candidate_tokens,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        seed=args.seed,
        judge_scores=args.judge_scores is not None,
    )


async def evaluate_arm(args: argparse.Namespace) -> int:
    collection = Path(args.test).expanduser().resolve()
    manifest, records = read_collection(collection)
    expected = manifest.dataset.first or manifest.dataset.rows
    if len(records) < expected:
        print(
            f"note: {collection} has {len(records)} of {expected} questions "
            "(still being collected?); rerun later to add the rest",
            file=sys.stderr,
        )
    if args.first is not None:
        records = records[: args.first]
    if not records:
        raise InputError(f"{collection} has no question records")
    ssa = build_ssa(args)
    judge = load_judge(args.judge_scores) if args.judge_scores else None
    cfg = ChainConfig.load(args.config)
    out = Path(args.out) / args.label
    settings = arm_settings(collection, manifest, args.k, ssa, cfg)
    if judge is not None:
        settings["judge"] = {"dm": args.judge_scores, "train": judge.train}
    check_settings(out, settings)
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    async with Session.from_config(cfg) as session:
        run = await run_arm(
            session,
            records,
            out,
            ssa,
            args.k,
            concurrency=args.concurrency,
            progress=not args.quiet,
            judge=judge,
        )
    if run.written or run.failed:
        writer = RecordWriter(out / RUNS)
        writer.write({"started": started, **run.to_dict()})
        writer.close()
    summary = write_arm_summary(out)
    print(format_arm(summary))
    rate = run.completion_tokens / run.wall_s if run.wall_s else 0.0
    print(
        f"this run: {run.written} question(s) written ({run.done_before} before, "
        f"{len(run.failed)} failed), prompt {run.prompt_tokens:,} / completion "
        f"{run.completion_tokens:,} tokens, {run.wall_s:.1f} s ({rate:.1f} tok/s)"
    )
    for qid, why in run.failed[:5]:
        print(f"  failed {qid}: {why}")
    return 1 if run.failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--test", help="behaviour collection directory (ponder collect)")
    p.add_argument("-c", "--config", help="chain file; its aggregator role serves SSA")
    p.add_argument("--label", help="the arm's name, e.g. ssa-0.5b (a directory under --out)")
    p.add_argument("--out", default="results/ssa_eval")
    p.add_argument("-k", "--k", type=int, default=8, help="samples per question (default 8)")
    p.add_argument("--first", type=int, help="only the first N questions of the collection")
    p.add_argument("--concurrency", type=int, default=4, help="SSA requests in flight")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    defaults = SSA()
    p.add_argument("--max-candidates", type=int, default=defaults.max_candidates)
    p.add_argument("--max-candidate-tokens", type=int, default=defaults.max_candidate_tokens)
    p.add_argument("--max-tokens", type=int, default=defaults.max_tokens)
    p.add_argument("--temperature", type=float, default=defaults.temperature)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument(
        "--judge-scores",
        metavar="DM",
        help="show SSA each candidate's P(correct) by this probe-free DM (e.g. probe-free)",
    )
    p.add_argument(
        "--summarize-only", action="store_true", help="rebuild OUT/summary.md from every arm"
    )
    p.add_argument("--replay", help="summarize-only: aggregation_replay's per_question.jsonl")
    p.add_argument(
        "--replay-match",
        nargs="+",
        default=["learned"],
        help="summarize-only: replay methods whose names contain one of these (default learned)",
    )
    args = p.parse_args(argv)
    try:
        if args.summarize_only:
            out = Path(args.out)
            md, data = summarize_all(
                out, Path(args.replay).expanduser() if args.replay else None, args.replay_match
            )
            (out / "summary.md").write_text(md + "\n", encoding="utf-8")
            (out / "summary.json").write_text(json.dumps(data, indent=2), encoding="utf-8")
            print(md)
            return 0
        missing = [f"--{n}" for n in ("test", "config", "label") if not getattr(args, n)]
        if missing:
            p.error(f"{', '.join(missing)} required (or --summarize-only)")
        if "/" in args.label or args.label in (".", ".."):
            p.error("--label must be a plain name")
        return asyncio.run(evaluate_arm(args))
    except PonderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
