"""``--ray`` without the extra, an unreachable address, and that nothing imports Ray unless asked;
the endpoint gate's cap, shared pause on 429/503 and lease expiry (in-process, no Ray)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from ponder.cli import main
from ponder.errors import InputError, MissingExtraError
from ponder.scale import ray_env
from ponder.scale.gate import EndpointGate


def test_ray_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'ponder\[ray\]'"):
        ray_env.import_ray()


def test_cli_ray_without_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    data = tmp_path / "q.jsonl"
    data.write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    assert main(["eval", "--data", str(data), "--ray"]) == 1
    assert "pip install 'ponder[ray]'" in capsys.readouterr().err


@pytest.mark.parametrize("address", ["127.0.0.1:1", "ray://127.0.0.1:1"])
def test_an_unreachable_address_is_named(address: str) -> None:
    with pytest.raises(InputError, match=f"--ray {address}: no Ray cluster answers there"):
        ray_env.check_reachable(address)


def test_a_malformed_address_is_refused() -> None:
    with pytest.raises(InputError, match="is not a Ray address"):
        ray_env.check_reachable("nowhere")


def test_ponder_and_its_cli_do_not_import_ray() -> None:
    code = (
        "import sys, ponder, ponder.cli; ponder.cli.build_parser(); "
        "import ponder.evaluation.runner, ponder.learning.collect.collector; "
        "assert 'ray' not in sys.modules, 'ray imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


async def test_the_gate_caps_calls_in_flight() -> None:
    gate = EndpointGate(cap=2)
    a, b = await gate.acquire(), await gate.acquire()
    third = asyncio.ensure_future(gate.acquire())
    await asyncio.sleep(0.05)
    assert not third.done()
    await gate.release(a)
    assert await asyncio.wait_for(third, 1) > b
    assert (await gate.stats())["peak"] == 2


async def test_a_429_pauses_everyone_for_its_retry_after() -> None:
    gate = EndpointGate(cap=4)
    lease = await gate.acquire()
    await gate.release(lease, status=429, retry_after_s=0.3)
    t = time.monotonic()
    await gate.acquire()
    assert time.monotonic() - t >= 0.25


async def test_a_dead_workers_lease_is_taken_back() -> None:
    gate = EndpointGate(cap=1, lease_s=0.2)
    await gate.acquire()  # never released: its worker died
    t = time.monotonic()
    await asyncio.wait_for(gate.acquire(), 2)
    assert time.monotonic() - t >= 0.15


def test_cli_names_an_unreachable_address(tmp_path, capsys: pytest.CaptureFixture) -> None:
    pytest.importorskip("ray.data")
    data = tmp_path / "q.jsonl"
    data.write_text('{"question": "1+1?", "answer": "#### 2"}\n')
    assert main(["collect", "--dataset", str(data), "--ray", "127.0.0.1:1"]) == 2
    assert "--ray 127.0.0.1:1: no Ray cluster answers there" in capsys.readouterr().err
