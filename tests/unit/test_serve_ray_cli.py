"""``ponder serve --ray-serve`` refuses clearly: without the ``ray`` extra it names the extra to
install, and the Ray flags without ``--ray-serve`` are config errors (exit 2); a replica whose
backends did not start fails Ray Serve's health check (no Ray needed to show it)."""

from __future__ import annotations

import asyncio
import sys

import pytest

from ponder.backends.fake import FakeBackend
from ponder.cli import main
from ponder.errors import ServerStartError


def test_without_the_extra_it_says_which_one_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "ray.serve", None)
    assert main(["serve", "--ray-serve", "--replicas", "2"]) == 1
    err = capsys.readouterr().err
    assert "MissingExtraError" in err and "pip install 'ponder[ray]'" in err


def test_deployment_without_the_extra_names_it_too(monkeypatch):
    from ponder.errors import MissingExtraError
    from ponder.serve.ray_serve import deployment

    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.serve", None)
    with pytest.raises(MissingExtraError, match=r"ponder\[ray\]"):
        deployment({"chains": {"cot": {"strategy": {"name": "cot"}}}})


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--replicas", "2"], "--replicas: needs --ray-serve"),
        (["--ray-address", "auto"], "--ray-address: needs --ray-serve"),
        (["--ray-serve", "--replicas", "0"], "--replicas: must be at least 1"),
    ],
)
def test_ray_flags_are_checked(argv, says, capsys):
    assert main(["serve", *argv]) == 2
    assert says in capsys.readouterr().err


class _WontStart(FakeBackend):
    async def start(self) -> object:
        raise ServerStartError("no model here")


async def test_a_replica_whose_backends_did_not_start_fails_rays_health_check():
    from ponder.serve.app import create_app
    from ponder.serve.config import ServeConfig
    from ponder.serve.ray_serve import PonderReplica

    cfg = ServeConfig.from_dict({"chains": {"cot": {"strategy": {"name": "cot"}}}})
    replica = PonderReplica()
    replica.app = create_app(cfg, backend=_WontStart(["x"]))
    replica.check_health()  # before its lifespan: starting, healthy
    async with replica.app.router.lifespan_context(replica.app):
        for _ in range(100):
            if replica.app.state.readiness() != "starting":
                break
            await asyncio.sleep(0.01)
        with pytest.raises(RuntimeError, match="did not start"):
            replica.check_health()


def test_an_unreachable_ray_address_is_named_at_once(capsys):
    pytest.importorskip("ray.serve")
    assert main(["serve", "--ray-serve", "--ray-address", "127.0.0.1:1"]) == 2
    assert "--ray-address: cannot reach Ray at 127.0.0.1:1" in capsys.readouterr().err
