"""Features of one answer group within a sample set, for the learned aggregator.

Use ``group_features(samples, k)`` to turn k sampled outcomes into ``(groups, rows)``: one
equivalence group per distinct answer (as ``majority`` groups them) and one feature dict per
group. Features come in named families so an artifact can be trained on what will be available at
inference:

- ``votes``: vote share, count / k, whether it is the plurality, the leader's share;
- ``confidence``: per DeepConf measure (``ponder.confidence``) the group's mean and its difference
  from the mean over all answered samples, the group's max lowest-group confidence, the
  confidence-weighted vote share, and the same for the mean token logprob;
- ``length``: mean tokens (/100), relative to the set, and the share of members cut at max_tokens;
- ``form``: whether the answer is a whole number (GSM8K answers are);
- ``critique``: mean self-critique P("yes") (collector only), and relative to the set;
- ``probes``: how often the members' intermediate probes already gave this answer, and this
  answer's share of all probe answers in the set (collector only);
- ``hidden``: the mean of the members' reduced last-token hidden states (``hidden_0..``;
  a collection's sidecar, ``ponder corpus hidden``; samples without one are refused).

``live`` (votes, confidence, length, form) is what a ``sample`` chain with ``cot`` and
``logprobs: true`` provides; ``all`` adds what only ``ponder collect`` records (``hidden`` is
never implied: name it, e.g. ``all,hidden``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

from ponder.aggregator.confidence_filter import confidence_groups
from ponder.aggregator.voting import Group, group_answers
from ponder.confidence import MEASURES
from ponder.errors import ConfigError
from ponder.grading import is_equivalent
from ponder.protocol.actions import Outcome

FAMILIES = ("votes", "confidence", "length", "form", "critique", "probes", "hidden")
PRESETS = {"live": ("votes", "confidence", "length", "form"), "all": FAMILIES[:6]}


def _conf(s: Outcome, measure: str) -> float | None:
    tc = s.data.get("trace_confidence")
    v = tc.get(measure) if isinstance(tc, dict) else None
    return float(v) if v is not None else None


def _mean(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


@lru_cache(maxsize=65536)
def _same(a: str, b: str) -> bool:
    return is_equivalent(a, b)


def _is_whole(answer: str) -> float:
    try:
        x = float(answer.replace(",", "").strip().strip("$"))
    except ValueError:
        return 0.0
    return 1.0 if math.isfinite(x) and x == int(x) else 0.0


def resolve_families(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"live"``, ``"all"`` or a comma-separated / listed choice of families."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        for fam in PRESETS.get(name, (name,)):
            if fam not in FAMILIES:
                raise ConfigError(
                    "features",
                    f"unknown feature family {fam!r}; valid: {', '.join((*PRESETS, *FAMILIES))}",
                )
            if fam not in out:
                out.append(fam)
    return tuple(out)


def _need(value: float | None, family: str, what: str) -> float:
    if value is None:
        raise ConfigError(
            "aggregator.features",
            f"feature family {family!r} needs {what} on the samples, which they lack "
            f"(train the artifact without it, e.g. --features live)",
        )
    return value


def group_features(
    samples: Sequence[Outcome], k: int | None = None, families: Sequence[str] = FAMILIES[:6]
) -> tuple[list[Group], list[dict[str, float]]]:
    """The answer groups of ``samples`` and one feature row per group (see the module doc)."""
    groups = group_answers(samples)
    k = k or len(samples)
    answered = [i for g in groups for i in g.members]
    if not groups:
        return [], []
    top = max(len(g.members) for g in groups)
    rows: list[dict[str, float]] = [{} for _ in groups]
    fams = set(families)
    if "votes" in fams:
        for g, row in zip(groups, rows, strict=True):
            row["share"] = len(g.members) / len(answered)
            row["count_k"] = len(g.members) / k
            row["plurality"] = 1.0 if len(g.members) == top else 0.0
            row["leader_share"] = top / len(answered)
    if "confidence" in fams:
        for m in MEASURES:
            overall = _need(
                _mean([_conf(samples[i], m) for i in answered]),
                "confidence",
                "trace confidence (logprobs: true)",
            )
            for g, row in zip(groups, rows, strict=True):
                gm = _mean([_conf(samples[i], m) for i in g.members])
                row[f"{m}_mean"] = gm if gm is not None else overall
                row[f"{m}_rel"] = row[f"{m}_mean"] - overall
        for g, row in zip(groups, rows, strict=True):
            row["lowest_group_max"] = max(
                (c for i in g.members if (c := _conf(samples[i], "lowest_group")) is not None),
                default=row["lowest_group_mean"],
            )
        weighted = confidence_groups(samples, answered, "lowest_group")
        total = sum(w.weight for w in weighted) or 1.0
        for g, row in zip(groups, rows, strict=True):
            w = next(x.weight for x in weighted if x.members[0] in g.members)
            row["conf_vote_share"] = w / total
        lp_all = _mean([samples[i].confidence for i in answered]) or 0.0
        for g, row in zip(groups, rows, strict=True):
            gm = _mean([samples[i].confidence for i in g.members])
            row["logprob_mean"] = gm if gm is not None else lp_all
            row["logprob_rel"] = row["logprob_mean"] - lp_all
    if "length" in fams:
        all_len = _mean([float(samples[i].data.get("tokens", 0)) for i in answered]) or 0.0
        for g, row in zip(groups, rows, strict=True):
            glen = _mean([float(samples[i].data.get("tokens", 0)) for i in g.members]) or 0.0
            row["tokens_100"] = glen / 100
            row["tokens_rel_100"] = (glen - all_len) / 100
            cut = [samples[i].data.get("finish_reason") == "length" for i in g.members]
            row["cut_share"] = sum(cut) / len(cut)
    if "form" in fams:
        for g, row in zip(groups, rows, strict=True):
            row["whole_number"] = _is_whole(g.answer)
    if "critique" in fams:
        crit_all = _need(
            _mean([samples[i].data.get("critique_p_yes") for i in answered]),
            "critique",
            "self-critique P(yes) (recorded by ponder collect)",
        )
        for g, row in zip(groups, rows, strict=True):
            gm = _mean([samples[i].data.get("critique_p_yes") for i in g.members])
            row["critique_mean"] = gm if gm is not None else crit_all
            row["critique_rel"] = row["critique_mean"] - crit_all
    if "probes" in fams:
        if not any("probes" in samples[i].data for i in answered):
            _need(None, "probes", "probe answers (recorded by ponder collect)")
        all_probes = [p for i in answered for p in samples[i].data.get("probes") or [] if p]
        for g, row in zip(groups, rows, strict=True):
            mine = [p for i in g.members for p in samples[i].data.get("probes") or [] if p]
            agree = sum(_same(p, g.answer) for p in mine)
            row["probe_agree"] = agree / len(mine) if mine else 0.0
            hits = sum(_same(p, g.answer) for p in all_probes)
            row["probe_share"] = hits / len(all_probes) if all_probes else 0.0
    if "hidden" in fams:
        for g, row in zip(groups, rows, strict=True):
            vecs = [samples[i].data.get("hidden") for i in g.members]
            if any(v is None for v in vecs):
                _need(None, "hidden", "hidden states (ponder corpus hidden DIR on the collection)")
            dims = len(vecs[0])  # type: ignore[arg-type]
            for j in range(dims):
                row[f"hidden_{j:02d}"] = sum(v[j] for v in vecs) / len(vecs)  # type: ignore[index]
    return groups, rows
