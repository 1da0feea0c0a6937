"""``ponder serve`` on Ray Serve: 2 replicas of the same app against a loopback OpenAI-compatible
stub, called with the official openai client; both replicas answer, then Ray shuts down."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from ponder.backends.local.server import free_port
from ponder.serve import ServeConfig
from ponder.serve.replica import REPLICA_HEADER
from tests.unit.fault_upstream import Faults, FaultUpstream

serve = pytest.importorskip("ray.serve", reason="needs the ray extra: pip install 'ponder[ray]'")
ray = pytest.importorskip("ray")

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

QUESTION = [{"role": "user", "content": "What is 2 + 2?"}]


@pytest.fixture(scope="module")
def ray_proxy() -> Iterator[tuple[str, FaultUpstream]]:
    from ponder.serve.ray_serve import deployment

    upstream = FaultUpstream(Faults(latency_s=0.05, words=(4, 8))).start()
    cfg = ServeConfig.from_dict(
        {
            "upstream": {"kind": "openai", "base_url": upstream.base_url, "model": "stub"},
            "chains": {
                "cot": {"strategy": {"name": "cot", "max_tokens": 64}},
                "sc3": {"strategy": {"name": "sample", "k": 3}},
            },
            "telemetry": {"replica": "t"},
        }
    )
    temp = tempfile.mkdtemp(prefix="ponder-ray-")  # short: Ray's socket paths have a length limit
    port = free_port("127.0.0.1")
    ray.init(
        address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        try:
            serve.run(deployment(cfg, replicas=2, num_cpus=0.25), name="ponder", route_prefix="/")
        except RuntimeError as exc:  # say why: the replicas' own logs
            raise AssertionError(f"{exc}\n{serve_log_tail(temp)}") from exc
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        yield base, upstream
    finally:
        serve.shutdown()
        ray.shutdown()
        upstream.stop()
        shutil.rmtree(temp, ignore_errors=True)


def serve_log_tail(temp: str, lines: int = 40) -> str:
    logs = sorted(Path(temp).glob("session_*/logs/serve/*.log"))
    return "\n".join(
        f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
        for p in logs
        if "replica" in p.name or "controller" in p.name
    )


def wait_ready(base: str, timeout_s: float = 120.0, alive: Any = lambda: None) -> None:
    deadline = time.monotonic() + timeout_s
    ready = 0
    while ready < 4:  # a few in a row, so both replicas have started
        assert time.monotonic() < deadline, "Ray Serve replicas did not become ready"
        assert alive() is None, "the server exited"
        try:
            ok = httpx.get(f"{base}/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            ok = False
        ready = ready + 1 if ok else 0
        time.sleep(0.1)


def ask(base: str, model: str) -> tuple[str, Any]:
    client = openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0, timeout=60)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=QUESTION)
    return raw.headers[REPLICA_HEADER], raw.parse()


def test_the_ponder_serve_command_runs_replicas_and_stops_cleanly():
    """``ponder serve --ray-serve --replicas 2``: its own local Ray (its own temp dir), both
    replicas answer, SIGTERM stops it with exit 0. (Runs before the module's fixture starts.)"""
    upstream = FaultUpstream(Faults(words=(4, 8))).start()
    temp = tempfile.mkdtemp(prefix="ponder-ray-")
    port = free_port("127.0.0.1")
    base = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "ponder", "serve", "--ray-serve", "--replicas", "2"]
    cmd += ["--upstream-url", upstream.base_url, "--upstream-model", "stub", "--port", str(port)]
    env = {**os.environ, "RAY_TMPDIR": temp, "PONDER_REPLICA": "cli"}
    env.pop("RAY_ADDRESS", None)  # its own local Ray, never another job's
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_ready(base, alive=proc.poll)
        answers = [ask(base, m) for m in ["ponder:cot", "stub"] * 6]
        assert all(resp.choices[0].message.content for _, resp in answers)
        names = {r for r, _ in answers}
        assert len(names) == 2 and all(n.startswith("cli-") for n in names), names
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-3000:]
        assert f"http://127.0.0.1:{port}/v1" in out and "2 replica(s) on Ray Serve, ready" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        upstream.stop()
        shutil.rmtree(temp, ignore_errors=True)


def test_two_replicas_answer_with_the_same_chains(ray_proxy):
    base, upstream = ray_proxy
    models = ["ponder:cot", "ponder:sc3", "stub"] * 8  # two chains and pass-through
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda m: ask(base, m), models))
    for model, (_, resp) in zip(models, answers, strict=True):
        assert resp.choices[0].message.content, model
        assert resp.usage.completion_tokens > 0
        if model.startswith("ponder:"):
            assert resp.model_extra["ponder"]["chain"] == model.removeprefix("ponder:")
    replicas = Counter(r for r, _ in answers)
    assert len(replicas) == 2, replicas  # both replicas served
    assert all(r.startswith("t-") for r in replicas)  # the configured name + Ray's replica id
    assert len(upstream.log) >= len(models)


def test_each_replica_counts_its_own_requests_in_metrics(ray_proxy):
    base, _ = ray_proxy
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 60
    while len(seen) < 2 and time.monotonic() < deadline:
        r = httpx.get(f"{base}/metrics", timeout=10)
        seen[r.headers[REPLICA_HEADER]] = r.text
    assert len(seen) == 2
    for replica, text in seen.items():
        assert f'replica="{replica}"' in text
        other = next(n for n in seen if n != replica)
        assert f'replica="{other}"' not in text
