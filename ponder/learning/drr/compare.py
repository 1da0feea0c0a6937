"""Replay the judge-aware stops against each other: ``drr_bayes`` vs ``drr_sample`` vs ``adaptive``.

Use ``compare_stops(dm, scored)`` on a scored test collection (``replay.score_collection``) for
one ``PolicyRun`` per policy and threshold, the same units and baselines as ``ponder drr
evaluate`` (a unit = one question, samples in seed order, baseline fixed maj@k), or ``python -m
ponder.learning.drr.compare --test DIR [--dm default]`` for the table. Policies:

- ``bayes@t`` (``drr_bayes``): votes weighted by each trace's DM P(correct) at its end; stop
  when the Beta posterior that the leader is ahead is >= t (at least 2 samples); answer the
  heaviest group. Charged the probes (the DM's features need them).
  ``bayes_raw@t``: the same with raw (unnormalized) judge weights.
- ``judge_vote@k``: all k samples, judge-weighted vote (``judge_weighted``), no early stop.
- ``dm_sample@t``, ``adaptive@t``, ``fixed@n``: as in ``replay``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ponder.grading import is_equivalent
from ponder.learning.drr.replay import (
    PolicyRun,
    ScoredQuestion,
    Unit,
    adaptive,
    dm_sample,
    fixed,
    full,
    rounds,
)
from ponder.stopping.model import DM
from ponder.strategies.drr_bayes import bayes_pick, bayes_score

BAYES_GRID = (0.7, 0.8, 0.9, 0.95, 0.99)
STOP_GRID = (0.3, 0.5, 0.7, 0.9)
ADAPTIVE_GRID = (0.5, 0.75, 1.0)


def bayes(
    q: ScoredQuestion,
    threshold: float,
    prior: float = 1.0,
    floor: float = 0.02,
    min_samples: int = 2,
    normalize: bool = True,
    round_size: int = 1,
) -> Unit:
    """``drr_bayes`` (deciding after each round of ``round_size``) on one recorded question."""
    answers: list[str | None] = []
    scores: list[float] = []
    tokens = 0
    ends = set(rounds(len(q.traces), round_size))
    for t in q.traces:
        answers.append(t.states[-1].answer)
        scores.append(t.p[-1])
        tokens += t.sample.tokens + t.probe_tokens
        if len(answers) not in ends:
            continue
        score = bayes_score(answers, scores, prior, floor, min_samples, normalize)
        if len(answers) >= min_samples and score >= threshold:
            break
    ans = bayes_pick(answers, scores, floor)
    return Unit(is_equivalent(ans, q.record.gold), tokens, len(answers))


def judge_vote(q: ScoredQuestion, floor: float = 0.02) -> Unit:
    """Every sample, votes weighted by the DM's P(correct) (``judge_weighted``)."""
    answers = [t.states[-1].answer for t in q.traces]
    ans = bayes_pick(answers, [t.p[-1] for t in q.traces], floor)
    tokens = sum(t.sample.tokens + t.probe_tokens for t in q.traces)
    return Unit(is_equivalent(ans, q.record.gold), tokens, len(answers))


def compare_stops(dm: DM, scored: Sequence[ScoredQuestion]) -> list[PolicyRun]:
    k = max((len(q.traces) for q in scored), default=0)
    par = "parallel"
    traces = [t for q in scored for t in q.traces]  # the table's sequential baseline
    runs = [PolicyRun("sequential", "full", None, [full(t) for t in traces])]
    runs += [PolicyRun(par, "fixed", n, [fixed(q, n) for q in scored]) for n in (k // 2, k)]
    runs.append(PolicyRun(par, "judge_vote", k, [judge_vote(q) for q in scored]))
    runs += [PolicyRun(par, "adaptive", t, [adaptive(q, t) for q in scored]) for t in ADAPTIVE_GRID]
    if dm.sampling is not None:
        runs += [
            PolicyRun(par, "dm_sample", t, [dm_sample(q, dm, t) for q in scored]) for t in STOP_GRID
        ]
    runs += [PolicyRun(par, "bayes", t, [bayes(q, t) for q in scored]) for t in BAYES_GRID]
    runs += [
        PolicyRun(par, "bayes_raw", t, [bayes(q, t, normalize=False) for q in scored])
        for t in BAYES_GRID[:2]
    ]
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    from ponder.behaviour.hidden import read_hidden
    from ponder.behaviour.records import read_collection
    from ponder.learning.drr.evaluate import _fmt_policies, policy_table
    from ponder.learning.drr.replay import score_collection
    from ponder.learning.drr.train import max_tokens_of
    from ponder.stopping.model import load_dm

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--test", required=True, help="test collection directory")
    p.add_argument("--dm", default="default", help="DM artifact (default: the packaged one)")
    args = p.parse_args(argv)
    manifest, records = read_collection(args.test)
    dm = load_dm(args.dm)
    dm.check_reasoner(manifest)
    hidden = read_hidden(args.test) if dm.needs_hidden else None
    scored = score_collection(dm, records, max_tokens_of(manifest), hidden)
    print("\n".join(_fmt_policies(policy_table(compare_stops(dm, scored)))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
