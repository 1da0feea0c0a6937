"""What a Ray worker is given and checks, without Ray: secrets travel as an object ref (never in
the pickled worker spec), and a worker refuses to serve another model than the manifest's."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from ponder.behaviour.records import ModelInfo
from ponder.config import ChainConfig
from ponder.errors import ConfigError
from ponder.learning.collect.collector import CollectItem
from ponder.learning.collect.strategy import BehaviourCollector
from ponder.scale.model_check import check_served, expected_models
from ponder.scale.ray_pool import _secret_ref
from ponder.scale.worker import WorkerSpec
from tests.unit.steady_upstream import SteadyUpstream


class FakeRay:
    def put(self, value: object) -> str:
        self.value = value
        return "ObjectRef(abc)"


def test_secrets_travel_by_reference_not_in_the_worker_spec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEET_KEY", "sk-fleet-0123456789")
    chain = ChainConfig.from_dict(
        {"backend": {"kind": "openai", "base_url": "http://h:1/v1", "model": "m",
                     "api_key_env": "FLEET_KEY"}}
    )  # fmt: skip
    ray = FakeRay()
    refs = _secret_ref(ray, chain)
    assert refs == ["ObjectRef(abc)"] and ray.value["FLEET_KEY"] == "sk-fleet-0123456789"
    spec = WorkerSpec(chain, CollectItem(BehaviourCollector()), expected={}, secrets=refs)
    assert b"sk-fleet" not in pickle.dumps(spec)


def test_no_secret_set_ships_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "PONDER_MODEL", "OPENAI_MODEL", "K"):
        monkeypatch.delenv(name, raising=False)
    chain = ChainConfig.from_dict(
        {
            "backend": {
                "kind": "openai",
                "base_url": "http://h:1/v1",
                "model": "m",
                "api_key_env": "K",
            }
        }
    )
    assert _secret_ref(FakeRay(), chain) == []


async def test_a_worker_whose_model_file_differs_refuses(tmp_path: Path) -> None:
    model = tmp_path / "m.gguf"
    model.write_bytes(b"the manifest's model")
    chain = ChainConfig.from_dict({"backend": {"kind": "local", "model_path": str(model)}})
    expected = expected_models(chain)
    await check_served(chain, expected)  # the same file: served
    model.write_bytes(b"another model")  # this node holds another file
    with pytest.raises(ConfigError, match="this worker serves m .*install the same model"):
        await check_served(chain, expected)


async def test_an_endpoint_that_serves_another_model_is_refused() -> None:
    with SteadyUpstream(model="steady-1") as up:
        ok = ChainConfig.from_dict(
            {"backend": {"kind": "openai", "base_url": up.base_url, "model": "steady-1"}}
        )
        await check_served(ok, expected_models(ok))
        other = ChainConfig.from_dict(
            {"backend": {"kind": "openai", "base_url": up.base_url, "model": "other-7b"}}
        )
        with pytest.raises(ConfigError, match="serves steady-1, not 'other-7b'"):
            await check_served(other, {"default": ModelInfo(name="other-7b")})


def test_a_workers_fatal_error_comes_back_as_its_type() -> None:
    from ponder.errors import AuthenticationFailed, ClusterError
    from ponder.scale.ray_pool import _rebuilt

    exc = _rebuilt("ConfigError:backend: this worker serves a, not b")
    assert isinstance(exc, ConfigError) and str(exc) == "backend: this worker serves a, not b"
    assert isinstance(_rebuilt("AuthenticationFailed:401 bad key"), AuthenticationFailed)
    assert isinstance(_rebuilt("KeyError:'x'"), ClusterError)
