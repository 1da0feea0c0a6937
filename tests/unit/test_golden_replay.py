"""Golden tests: the model-free replays over a committed behaviour collection, through the CLI.

``tests/fixtures/behaviour/{train,test}`` are the first 12 questions (8 + 4) of a real collection
(``ponder collect`` of the default model on GSM8K train, k=8, probes every 64 tokens,
self-critique), in the collection format as written (``manifest.json`` + ``records.jsonl``). On
them, through ``python -m ponder`` (command names outlive module paths):

- ``drr evaluate`` with the shipped judge (``--dm default``), with and without ``--train``;
- ``drr train`` on the train split (the artifact itself), then ``drr evaluate`` with it, and
  ``drr evaluate --train`` (trains the same DM internally);
- a judge asked to replay another reasoner's collection is refused unless
  ``--allow-other-reasoner``;
- ``eval --offline`` of every aggregator that needs no model (majority, weighted,
  confidence_filter, learned with the shipped artifact, best_of_n with its default precomputed
  scorer, which falls back to majority here, and with a model-free function scorer);
- ``aggregate train`` on the train split, then ``eval --offline`` with that artifact.

Reports are compared with ``tests/golden/replay/*.json`` after dropping timestamps, wall times,
run ids and paths, with floats rounded to 9 decimals. Regenerate (only for an intended change)::

    PONDER_UPDATE_GOLDEN=1 python -m pytest tests/unit/test_golden_replay.py

The CLI records hold each aggregator's answer, not why it chose it, so the same aggregators are
also stepped in process over the fixture's samples, pinning each one's full outcome (votes,
weights, kept samples, scores, P(correct)) and the notes it yields.

Pinned with the pre-refactor code at commit 54d9285.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# -- every ponder import of this file (rewrite these if the package layout moves) ---------------
from ponder import Task
from ponder.aggregator import build_aggregator
from ponder.evaluation.offline import load_sample_sets
from ponder.protocol import Note

# -----------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path("tests") / "fixtures" / "behaviour"  # relative to ROOT, where the CLI runs
TRAIN = str(FIXTURES / "train")
TEST = str(FIXTURES / "test")
GOLDEN = ROOT / "tests" / "golden" / "replay"
UPDATE = os.environ.get("PONDER_UPDATE_GOLDEN") == "1"
DIGITS = 9

AGGREGATORS = [
    "majority",
    "weighted",
    "confidence_filter",
    'cf_tail={"name": "confidence_filter", "measure": "tail", "keep": 0.5}',
    '{"name": "learned", "artifact": "default"}',
    "best_of_n",
    'bon_shortest={"name": "best_of_n", "scorer": {"kind": "function", '
    '"function": "tests.unit.golden_scorers:shortest"}}',
]
RECORD_NOISE = {"wall_time_s", "trace_id"}
SUMMARY_NOISE = {"elapsed_s", "median_wall_s", "sum_wall_s"}


# -- helpers -------------------------------------------------------------------------------------


def canon(x: Any) -> Any:
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return repr(x)
        r = round(x, DIGITS)
        return 0.0 if r == 0 else r
    if isinstance(x, dict):
        return {str(k): canon(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [canon(v) for v in x]
    return x


def drop(d: dict[str, Any], *paths: str) -> dict[str, Any]:
    """A copy of ``d`` without the dotted ``paths`` (those that exist)."""
    d = json.loads(json.dumps(d))
    for path in paths:
        *head, last = path.split(".")
        node = d
        for key in head:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(last, None)
    return d


def ponder_cli(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """``python -m ponder ARGS`` in the repository root, on this checkout's code. BLAS/OpenMP
    run single-threaded so the sklearn fits of ``train`` reduce in one fixed order."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "ponder", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if ok:
        assert proc.returncode == 0, f"ponder {' '.join(args)} failed:\n{proc.stderr[-4000:]}"
    return proc


def check_golden(name: str, got: Any) -> None:
    path = GOLDEN / f"{name}.json"
    got = canon(got)
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        return
    assert path.exists(), f"{path} is missing; run with PONDER_UPDATE_GOLDEN=1 to write it"
    want = json.loads(path.read_text(encoding="utf-8"))
    assert got == want, f"{path.name} changed (PONDER_UPDATE_GOLDEN=1 rewrites it)"


def drr_report(out: Path, *noise: str) -> dict[str, Any]:
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    text = (out / "report.txt").read_text(encoding="utf-8").splitlines()
    return {"report": drop(report, *noise), "report_txt": text}


def dm_artifact(path: Path) -> dict[str, Any]:
    return drop(json.loads(path.read_text(encoding="utf-8")), "created")


def offline(out: Path) -> dict[str, Any]:
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    records = {}
    for row in summary:
        lines = (out / f"{row['config']}.jsonl").read_text(encoding="utf-8").splitlines()
        recs = [json.loads(line) for line in lines if line.strip()]
        recs = [{k: v for k, v in r.items() if k not in RECORD_NOISE} for r in recs]
        records[row["config"]] = sorted(recs, key=lambda r: str(r["id"]))  # written as done
    rows = [{k: v for k, v in row.items() if k not in SUMMARY_NOISE} for row in summary]
    return {"summary": rows, "records": records}


# -- the fixture ---------------------------------------------------------------------------------


def test_the_fixture_is_a_collection_split_by_question() -> None:
    got = {}
    for split in ("train", "test"):
        d = ROOT / FIXTURES / split
        manifest = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        lines = (d / "records.jsonl").read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines]
        got[split] = {
            "manifest": manifest,
            "ids": [r["id"] for r in records],
            "samples": [len(r["samples"]) for r in records],
        }
    assert len(got["train"]["ids"]) == 8 and len(got["test"]["ids"]) == 4
    assert not set(got["train"]["ids"]) & set(got["test"]["ids"])
    assert got["train"]["manifest"] == got["test"]["manifest"]
    check_golden("fixture", got)


# -- DRR: the shipped judge ----------------------------------------------------------------------


def test_drr_evaluate_with_the_shipped_judge(tmp_path: Path) -> None:
    ponder_cli(
        "drr", "evaluate", "--dm", "default", "--test", TEST, "--out", str(tmp_path), "--no-plots"
    )
    check_golden("drr_evaluate_default_dm", drr_report(tmp_path))


def test_drr_evaluate_with_the_shipped_judge_and_train_baselines(tmp_path: Path) -> None:
    ponder_cli(
        "drr",
        "evaluate",
        "--dm",
        "default",
        "--test",
        TEST,
        "--train",
        TRAIN,
        "--out",
        str(tmp_path),
        "--no-plots",
    )
    check_golden("drr_evaluate_default_dm_with_train", drr_report(tmp_path))


def test_a_judge_refuses_another_reasoners_collection_unless_told(tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(ROOT / TEST, other)
    manifest = json.loads((other / "manifest.json").read_text(encoding="utf-8"))
    manifest["model"]["sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    args = ["drr", "evaluate", "--dm", "default", "--test", str(other), "--no-plots"]
    refused = ponder_cli(*args, "--out", str(tmp_path / "a"), ok=False)
    assert refused.returncode == 2
    message = refused.stderr.strip().splitlines()[-1]
    check_golden("drr_evaluate_other_reasoner_refused", {"stderr": message})
    ponder_cli(*args, "--out", str(tmp_path / "b"), "--allow-other-reasoner")
    ponder_cli(
        "drr",
        "evaluate",
        "--dm",
        "default",
        "--test",
        TEST,
        "--out",
        str(tmp_path / "c"),
        "--no-plots",
    )
    assert drr_report(tmp_path / "b") == drr_report(tmp_path / "c")  # the override changes nothing


# -- DRR: a judge trained on the fixture ---------------------------------------------------------


def test_drr_train_then_evaluate(tmp_path: Path) -> None:
    dm = tmp_path / "dm.json"
    ponder_cli("drr", "train", "--data", TRAIN, "--out", str(dm))
    check_golden("drr_train_artifact", dm_artifact(dm))
    out = tmp_path / "eval"
    ponder_cli("drr", "evaluate", "--dm", str(dm), "--test", TEST, "--out", str(out), "--no-plots")
    check_golden("drr_train_then_evaluate", drr_report(out, "dm.created"))
    # ``evaluate --train`` without ``--dm`` trains the same judge and reports the same policies
    both = tmp_path / "both"
    ponder_cli(
        "drr", "evaluate", "--train", TRAIN, "--test", TEST, "--out", str(both), "--no-plots"
    )
    assert dm_artifact(both / "dm.json") == dm_artifact(dm)
    check_golden("drr_evaluate_train_flag", drr_report(both, "dm.created"))


# -- offline aggregation over the collection -----------------------------------------------------


@pytest.mark.parametrize("split", ["train", "test"])
def test_offline_aggregators_over_the_collection(tmp_path: Path, split: str) -> None:
    args = ["eval", "--offline", str(FIXTURES / split), "--out", str(tmp_path)]
    for spec in AGGREGATORS:
        args += ["--aggregator", spec]
    ponder_cli(*args, "--no-progress", "--no-plot")
    check_golden(f"offline_eval_{split}", offline(tmp_path))


def test_learned_aggregator_trained_on_the_fixture(tmp_path: Path) -> None:
    art = tmp_path / "learned.json"
    ponder_cli("aggregate", "train", "--collection", TRAIN, "--out", str(art))
    check_golden("aggregate_train_artifact", drop(json.loads(art.read_text()), "training.created"))
    spec = json.dumps({"name": "learned", "artifact": str(art)})
    out = tmp_path / "eval"
    ponder_cli(
        "eval",
        "--offline",
        TEST,
        "--out",
        str(out),
        "--aggregator",
        f"learned_fixture={spec}",
        "--no-progress",
        "--no-plot",
    )
    check_golden("offline_eval_learned_trained", offline(out))


# -- the same aggregators in process: why each chose what it chose -------------------------------


def named(spec: str) -> tuple[Any, str]:
    """``(aggregator, label)`` of an ``--aggregator`` spec, labelled as ``ponder eval`` does."""
    label, body = None, spec
    if "=" in spec and not spec.lstrip().startswith("{"):
        label, _, body = spec.partition("=")
    agg = build_aggregator(json.loads(body) if body.lstrip().startswith("{") else body)
    return agg, label or agg.name


def aggregate(agg: Any, question: str, samples: list[Any]) -> dict[str, Any]:
    """Step one aggregator's sans-I/O flow over ``samples`` (model-free: it may only yield
    notes); its outcome and notes, the chosen text as a hash."""
    flow = agg.flow(Task(question), samples)
    notes = []
    value = None
    while True:
        try:
            action = flow.send(value)
        except StopIteration as stop:
            out = stop.value
            break
        assert isinstance(action, Note), f"{agg.name} asked for {action!r} offline"
        notes.append({"event": action.event, "data": action.data})
        value = None
    return {
        "answer": out.answer,
        "confidence": out.confidence,
        "data": out.data,
        "text_sha256": hashlib.sha256(out.text.encode()).hexdigest()[:16],
        "notes": notes,
    }


@pytest.mark.parametrize("split", ["train", "test"])
def test_offline_aggregators_in_process(split: str) -> None:
    items = load_sample_sets(str(ROOT / FIXTURES / split))
    got: dict[str, Any] = {}
    for spec in AGGREGATORS:
        agg, label = named(spec)
        got[label] = {it.id: aggregate(agg, it.question, list(it.extra["samples"])) for it in items}
    check_golden(f"aggregators_in_process_{split}", got)
