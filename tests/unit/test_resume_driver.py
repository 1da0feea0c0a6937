"""The one resumable driver (``ponder.evaluation.driver``) resumes outputs written before it.

``tests/unit/data/pre_driver`` holds outputs made by the three drivers it replaced (commit
a788969, fake backends, three items each: see its README) and two lines of a real ``ponder
collect`` run on the GSM8K train set. Each test keeps the first two lines (plus a line torn by a
crash), resumes with today's code, and checks that the done items are skipped, nothing is
duplicated, the old lines and manifest are untouched, and the new line is the line the old code
wrote for that item, byte for byte but for wall times and run ids.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest

from ponder.backends.fake import FakeBackend
from ponder.behaviour.datasets import Item, load_items, select
from ponder.behaviour.records import ModelInfo, read_collection
from ponder.cli import main
from ponder.config import ChainConfig
from ponder.errors import CapabilityMissing
from ponder.evaluation import EvalJob, evaluate
from ponder.evaluation.driver import Bar, Failed, Output, Write, drive
from ponder.learning.collect.collector import build_manifest, collect
from ponder.learning.collect.strategy import BehaviourCollector
from ponder.learning.ssa.rft_run import RFTSettings, build_rft_manifest, read_ssa_examples, run_rft
from ponder.orchestrator.engine import Orchestrator
from ponder.orchestrator.session import Session
from tests.unit.test_collect_reasoner import _fake_sessions
from tests.unit.test_learning_collect import _responder as collect_responder
from tests.unit.test_ssa_rft import _responder as rft_responder

OLD = Path(__file__).parent / "data" / "pre_driver"
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
TORN = '{"id": "2", "quest'
VOLATILE = re.compile(r'("(?:wall_s|wall_time_s|trace_id)": ?)("[0-9a-f]+"|[-0-9.e]+)')


def _norm(line: str) -> str:
    return VOLATILE.sub(r"\1X", line)


def _partial(src: Path, dst: Path, keep: int = 2) -> list[str]:
    """The first ``keep`` lines of an old output at ``dst``, then a line torn by a crash."""
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text("".join(lines[:keep]) + TORN, encoding="utf-8")
    return lines


def _resumed(path: Path, old: list[str], keep: int = 2) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[:keep] == old[:keep]  # untouched, byte for byte
    ids = [json.loads(line)["id"] for line in lines]
    assert len(ids) == len(set(ids)) == len(old)  # nothing duplicated, nothing missing
    for line in lines[keep:]:
        [want] = [o for o in old if json.loads(o)["id"] == json.loads(line)["id"]]
        assert _norm(line) == _norm(want)  # the old code's line for that item
    return lines


async def test_a_collection_from_before_resumes(tmp_path: Path) -> None:
    out = tmp_path / "c"
    old = _partial(OLD / "collect" / "records.jsonl", out / "records.jsonl")
    shutil.copy(OLD / "collect" / "manifest.json", out / "manifest.json")
    data = shutil.copy(OLD / "collect" / "d.jsonl", tmp_path / "d.jsonl")
    items = [Item(str(i), f"q{i}", "4") for i in range(3)]
    strat = BehaviourCollector(k=2, max_tokens=8, probe_every=3)
    manifest = build_manifest(strat, ModelInfo(name="fake", sha256="abc"), data, 3, None)
    backend = FakeBackend(collect_responder)
    summary = await collect(items, out, Orchestrator(backend), strat, manifest, progress=False)
    assert (summary.done_before, summary.collected, summary.failed) == (2, 1, [])
    assert backend.requests and all("q2" in json.dumps(r.messages) for r in backend.requests)
    _resumed(out / "records.jsonl", old)
    assert (out / "manifest.json").read_bytes() == (OLD / "collect" / "manifest.json").read_bytes()
    assert [r.id for r in read_collection(out)[1]] == ["0", "1", "2"]


async def test_eval_results_from_before_resume(tmp_path: Path) -> None:
    old = _partial(OLD / "eval" / "maj3.jsonl", tmp_path / "maj3.jsonl")
    items = select(load_items(SHARED / "gsm8k" / "test.jsonl"), 3)
    chain = ChainConfig.from_dict({"strategy": {"name": "sample", "k": 3, "seed": 0}})
    backend = FakeBackend(lambda req, i: "\\boxed{18}" if i == 0 else "\\boxed{5}")
    [row] = await evaluate(
        [EvalJob("maj3", chain)], items, tmp_path, progress=False, backends={"default": backend}
    )
    assert len(backend.requests) == 1 and row["ran_now"] == 1 and row["n"] == 3
    _resumed(tmp_path / "maj3.jsonl", old)


async def test_ssa_targets_from_before_resume(tmp_path: Path) -> None:
    for name in ("d.jsonl", "d.jsonl.manifest.json", "rft.jsonl.manifest.json"):
        shutil.copy(OLD / "rft" / name, tmp_path / name)
    out = tmp_path / "rft.jsonl"
    old = _partial(OLD / "rft" / "rft.jsonl", out)
    examples, info = read_ssa_examples(tmp_path / "d.jsonl")
    settings = RFTSettings()
    man = build_rft_manifest(
        tmp_path / "d.jsonl", info, ModelInfo(name="agg", sha256="s"), settings
    )
    calls: list[str] = []
    async with Session({"default": FakeBackend(rft_responder(calls))}) as session:
        summary = await run_rft(examples, out, session, settings, man, progress=False)
    assert calls == ["c"] * 4 and (summary.done_before, summary.processed) == (2, 1)
    _resumed(out, old)
    manifest = (tmp_path / "rft.jsonl.manifest.json").read_bytes()
    assert manifest == (OLD / "rft" / "rft.jsonl.manifest.json").read_bytes()


def test_a_real_collection_from_before_resumes_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two lines of a real `ponder collect` (default chain, GSM8K train): the CLI builds the same
    manifest today (reasoner included), skips them and appends question 2 only."""
    train = SHARED / "gsm8k" / "train.jsonl"
    old_manifest = json.loads((OLD / "gsm8k-train" / "manifest.json").read_text())
    if not train.is_file():
        pytest.skip("no GSM8K train set beside the checkout")
    if hashlib.sha256(train.read_bytes()).hexdigest() != old_manifest["dataset"]["sha256"]:
        pytest.skip("the GSM8K train set beside the checkout is another version")
    out = tmp_path / "gsm8k-train-3"
    out.mkdir()
    shutil.copy(OLD / "gsm8k-train" / "manifest.json", out / "manifest.json")
    real = gzip.decompress((OLD / "gsm8k-train" / "records.jsonl.gz").read_bytes()).decode()
    (out / "records.jsonl").write_text(real + TORN, encoding="utf-8")
    backend = FakeBackend(collect_responder)
    _fake_sessions(monkeypatch, backend)
    args = ["collect", "--dataset", str(train), "--first", "3", "--out", str(out), "--quiet"]
    assert main(args) == 0
    lines = (out / "records.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    assert "".join(lines[:2]) == real and [json.loads(x)["id"] for x in lines] == ["0", "1", "2"]
    q2 = load_items(train)[2].question
    assert backend.requests and all(q2 in json.dumps(r.messages) for r in backend.requests)
    assert (out / "manifest.json").read_bytes() == (
        OLD / "gsm8k-train" / "manifest.json"
    ).read_bytes()


# -- the driver itself ------------------------------------------------------------------------


async def test_repeated_ids_run_once_and_failures_are_not_written(tmp_path: Path) -> None:
    ran: list[str] = []

    async def run(item: str) -> Write | Failed:
        ran.append(item)
        return Failed("no") if item == "b" else Write(json.dumps({"id": item}))

    out = Output(tmp_path / "x.jsonl")
    stats = await drive(["a", "b", "a", "c"], out, run, id_of=str, bar=Bar("t", enabled=False))
    assert sorted(ran) == ["a", "b", "c"] and stats.failed == [("b", "no")]
    assert (stats.total, stats.pending, stats.written) == (4, 3, 2)
    assert out.open() == {"a", "c"}


async def test_an_exception_stops_the_run_and_nothing_more_is_written(tmp_path: Path) -> None:
    started: list[str] = []

    async def run(item: str) -> Write:
        started.append(item)
        if item == "0":
            raise CapabilityMissing("no continuation")
        await asyncio.sleep(0.05)
        return Write(json.dumps({"id": item}))

    out = Output(tmp_path / "x.jsonl")
    with pytest.raises(CapabilityMissing):
        await drive(
            ["0", "1", "2", "3"], out, run, id_of=str, at_once=2, bar=Bar("t", enabled=False)
        )
    await asyncio.sleep(0.1)  # nothing left running writes afterwards
    assert out.open() == set() and "3" not in started  # in flight: cancelled, never written
