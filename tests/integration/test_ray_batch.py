"""Batch work on a real two-node Ray cluster (this machine, one CPU a node): ``ponder collect``
and ``ponder eval`` with ``--ray`` give the records a plain run gives (deterministic loopback
upstream), spread over both nodes; a resumed run skips what is done whichever way it was made;
a worker killed mid-run loses and duplicates nothing; and once against the real local model,
each question is done once. Needs ``ponder[ray]`` (skipped without it)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("ray.data")

from ponder.behaviour.datasets import Item  # noqa: E402
from ponder.evaluation.driver import Bar, Output, Write, drive  # noqa: E402
from tests.integration.ray_cluster import TwoNodeCluster  # noqa: E402
from tests.unit.steady_upstream import SteadyUpstream  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GSM8K = ROOT.parent / "shared" / "data" / "gsm8k" / "test.jsonl"
TIMING = {"wall_s", "wall_time_s", "trace_id"}


@pytest.fixture(scope="module")
def cluster() -> Iterator[TwoNodeCluster]:
    with TwoNodeCluster() as c:
        yield c


@pytest.fixture(scope="module")
def upstream() -> Iterator[SteadyUpstream]:
    with SteadyUpstream(latency_s=0.05) as up:
        yield up


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory, upstream: SteadyUpstream) -> Path:
    d = tmp_path_factory.mktemp("ray")
    lines = (
        GSM8K.read_text().splitlines()[:10]
        if GSM8K.is_file()
        else [
            json.dumps({"question": f"What is {i} + {i}?", "answer": f"#### {2 * i}"})
            for i in range(10)
        ]
    )
    (d / "q10.jsonl").write_text("\n".join(lines) + "\n")
    (d / "chain.yaml").write_text(
        "backend:\n  kind: openai\n"
        f"  base_url: {upstream.base_url}\n  model: steady-1\n  continuation: prefill\n"
        "  max_concurrency: 4\n"
        "strategy:\n  name: sample\n  k: 3\n  seed: 7\n"
    )
    return d


def ponder(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "ponder", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done


def rows(path: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        assert r["id"] not in out, f"{r['id']} written twice"
        out[r["id"]] = _untimed(r)
    return out


def _untimed(value: object) -> object:
    if isinstance(value, dict):
        return {k: _untimed(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_untimed(v) for v in value]
    return value


def nodes_of(stdout: str) -> int:
    m = re.search(r"ray: (\d+) item\(s\) on (\d+) node\(s\)", stdout)
    assert m, stdout
    return int(m.group(2))


TWO_NODES = ("--actors", "2", "--cpus-per-actor", "0.6", "--ray")
"""Two actors that cannot share a 1-CPU node: one on each (Ray's SPREAD alone is best-effort)."""
COLLECT = ("collect", "--dataset", "q10.jsonl", "-c", "chain.yaml", "-k", "2")
COLLECT += ("--max-tokens", "48", "--probe-every", "16", "--quiet")


def test_collect_on_two_nodes_equals_the_plain_run(cluster: TwoNodeCluster, work: Path) -> None:
    ponder(*COLLECT, "--out", "plain", cwd=work)
    done = ponder(
        *COLLECT, "--out", "onray", *TWO_NODES, cluster.address, "--per-actor", "2", cwd=work
    )
    assert nodes_of(done.stdout) == 2  # both nodes did work
    plain, onray = rows(work / "plain/records.jsonl"), rows(work / "onray/records.jsonl")
    assert len(plain) == 10 and onray == plain
    m1, m2 = (json.loads((work / d / "manifest.json").read_text()) for d in ("plain", "onray"))
    assert {**m1, "created": 0} == {**m2, "created": 0}
    assert "collected 10 question(s)" in done.stdout
    # usage summed across workers exactly: the summary's tokens are the records' sum
    total = sum(r["usage"]["completion_tokens"] for r in plain.values())
    assert f"{total} generated tokens" in done.stdout


def test_a_resumed_run_skips_what_is_done_whichever_way_it_was_made(
    cluster: TwoNodeCluster, work: Path
) -> None:
    plain = work / "plain"
    if not (plain / "records.jsonl").is_file():
        ponder(*COLLECT, "--out", "plain", cwd=work)
    part = work / "part"
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir()
    shutil.copy(plain / "manifest.json", part / "manifest.json")
    lines = (plain / "records.jsonl").read_text().splitlines()
    (part / "records.jsonl").write_text("\n".join(lines[:4]) + "\n")  # 4 done by a plain run
    done = ponder(*COLLECT, "--out", "part", "--ray", cluster.address, cwd=work)
    assert "collected 6 question(s) (4 before" in done.stdout
    assert rows(part / "records.jsonl") == rows(plain / "records.jsonl")
    again = ponder(*COLLECT, "--out", "part", cwd=work)  # a plain rerun: nothing left
    assert "collected 0 question(s) (10 before" in again.stdout


def test_eval_on_two_nodes_equals_the_plain_run(cluster: TwoNodeCluster, work: Path) -> None:
    args = ("eval", "--data", "q10.jsonl", "-c", "chain.yaml", "--no-progress")
    ponder(*args, "--out", "ev-plain", cwd=work)
    done = ponder(*args, "--out", "ev-ray", *TWO_NODES, cluster.address, cwd=work)
    assert nodes_of(done.stdout) == 2
    plain, onray = rows(work / "ev-plain/chain.jsonl"), rows(work / "ev-ray/chain.jsonl")
    assert len(plain) == 10 and onray == plain


def test_ssa_rft_on_two_nodes_equals_the_plain_run(cluster: TwoNodeCluster, work: Path) -> None:
    with (work / "ssa.jsonl").open("w") as f:
        for i, line in enumerate((work / "q10.jsonl").read_text().splitlines()):
            q = json.loads(line)
            ex = {"question_id": str(i), "kind": "mixed", "gold": q["answer"].split("####")[-1]}
            ex |= {"candidates": ["3", "4"], "majority": "3"}
            ex["messages"] = [{"role": "user", "content": q["question"] + "\nA) 3 B) 4"}]
            f.write(json.dumps(ex) + "\n")
    args = ("ssa", "rft", "--data", "ssa.jsonl", "-c", "chain.yaml", "-n", "2", "--quiet")
    args += ("--max-tokens", "40", "--role", "default")
    ponder(*args, "--out", "t-plain.jsonl", cwd=work)
    done = ponder(*args, "--out", "t-ray.jsonl", *TWO_NODES, cluster.address, cwd=work)
    assert nodes_of(done.stdout) == 2 and "sampled 10 example(s)" in done.stdout
    assert rows(work / "t-ray.jsonl") == rows(work / "t-plain.jsonl")


def test_the_endpoint_cap_holds_for_the_whole_cluster(cluster: TwoNodeCluster, work: Path) -> None:
    """Two actors of 4 questions each against one endpoint: with ``--endpoint-cap 2`` the
    endpoint never answers more than 2 at once; with the gate off it does."""
    peaks = {}
    for cap in ("2", "0"):
        with SteadyUpstream(latency_s=0.3) as up:
            chain = (work / "chain.yaml").read_text()
            base = re.search(r"base_url: (\S+)", chain)
            assert base
            (work / f"cap{cap}.yaml").write_text(chain.replace(base.group(1), up.base_url))
            ponder(
                "eval", "--data", "q10.jsonl", "-c", f"cap{cap}.yaml", "--no-progress",
                "--out", f"cap{cap}", "--per-actor", "4", "--endpoint-cap", cap,
                *TWO_NODES, cluster.address, cwd=work,
            )  # fmt: skip
            peaks[cap] = up.peak
    assert 1 <= peaks["2"] <= 2 < peaks["0"], peaks


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    cluster: TwoNodeCluster, work: Path, tmp_path: Path
) -> None:
    with SteadyUpstream(latency_s=0.4) as slow:
        chain = (work / "chain.yaml").read_text()
        base = re.search(r"base_url: (\S+)", chain)
        assert base
        (tmp_path / "chain.yaml").write_text(chain.replace(base.group(1), slow.base_url))
        shutil.copy(work / "q10.jsonl", tmp_path / "q10.jsonl")
        env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "ponder", *COLLECT, "--out", "killed"]
        cmd += ["--ray", cluster.address, "--per-actor", "1"]
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        records = tmp_path / "killed" / "records.jsonl"
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if records.is_file() and len(records.read_text().splitlines()) >= 2:
                break
            time.sleep(0.2)
        victims = cluster.workers("ScaleWorker")
        assert victims, "no worker actor found to kill"
        os.kill(victims[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, out[-3000:] + err[-5000:]
    assert "collected" in out and "0 failed" in out, out
    got = rows(records)  # asserts no id twice
    want = rows(work / "plain" / "records.jsonl") if (work / "plain").is_dir() else None
    assert len(got) == 10
    if want is not None:
        assert got == want


@pytest.mark.integration
def test_the_real_local_model_does_each_question_once(
    cluster: TwoNodeCluster, tmp_path: Path
) -> None:
    from ponder.backends.local.model import model_path

    if not model_path().is_file():
        pytest.skip("the default model is not assembled (ponder setup)")
    lines = (
        GSM8K.read_text().splitlines()[:2]
        if GSM8K.is_file()
        else [
            json.dumps({"question": "What is 2 + 3?", "answer": "#### 5"}),
            json.dumps({"question": "What is 4 * 2?", "answer": "#### 8"}),
        ]
    )
    (tmp_path / "q2.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "local.yaml").write_text(
        "backend:\n  kind: local\n  threads: 1\n  n_parallel: 2\n  ctx_per_slot: 1024\n"
    )
    done = ponder(
        "collect", "--dataset", "q2.jsonl", "-c", "local.yaml", "-k", "1",
        "--max-tokens", "48", "--probe-every", "24", "--no-self-critique", "--quiet",
        "--out", "local", "--ray", cluster.address, "--actors", "1", "--cpus-per-actor", "1",
        cwd=tmp_path,
    )  # fmt: skip
    got = rows(tmp_path / "local" / "records.jsonl")
    assert len(got) == 2 and "collected 2 question(s)" in done.stdout
    assert all(len(r["samples"]) == 1 and r["samples"][0]["tokens"] > 0 for r in got.values())


def test_a_question_that_keeps_killing_its_worker_is_reported_failed(
    cluster: TwoNodeCluster, upstream: SteadyUpstream, tmp_path: Path
) -> None:
    from ponder.config import ChainConfig
    from ponder.scale import ray_env
    from ponder.scale.ray_pool import RayPlacement

    @dataclass(frozen=True)
    class DieOn:  # defined here, so it is pickled by value: workers need not import the tests
        """Item work whose worker process dies on one item, every time (a poison question)."""

        poison: str

        async def __call__(self, orchestrator: object, item: Item) -> Write:
            if item.id == self.poison:
                os._exit(1)
            return Write(json.dumps({"id": item.id}))

    chain = ChainConfig.from_dict(
        {"backend": {"kind": "openai", "base_url": upstream.base_url, "model": "steady-1"}}
    )
    where = RayPlacement(cluster.address, actors=2, per_actor=1, max_task_retries=1)
    items = [Item(str(i), f"q{i}", "0") for i in range(6)]
    try:
        stats = asyncio.run(
            drive(
                items,
                Output(tmp_path / "out.jsonl"),
                where.remote(DieOn("3"), chain),
                id_of=lambda it: it.id,
                bar=Bar("t", enabled=False),
            )
        )
    finally:
        ray_env.shutdown()
    assert stats.written == 5
    assert [k for k, _ in stats.failed] == ["3"] and "lost" in stats.failed[0][1]
    assert sorted(rows(tmp_path / "out.jsonl")) == ["0", "1", "2", "4", "5"]
