"""Local models by name: built-in specs and the user registry that `ponder ssa export` writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from ponder.backends.local import prepare_model
from ponder.backends.local.model import SAMPLER_1_5B
from ponder.backends.local.registry import (
    register_model,
    registry_path,
    resolve_model,
)
from ponder.cli import main
from ponder.cli.ssa import backend_model_info
from ponder.config import ChainConfig, LocalBackendConfig
from ponder.errors import ConfigError, ModelIntegrityError


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _gguf(path: Path, body: bytes = b"GGUF fake model") -> tuple[Path, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return path, hashlib.sha256(body).hexdigest()


SSA_CHAIN = {
    "roles": {"aggregator": {"kind": "local", "model": "ssa-test"}},
    "strategy": {
        "name": "sample",
        "k": 2,
        "inner": {"name": "cot"},
        "aggregator": {"name": "ssa"},
    },
}


def test_a_registered_model_is_served_by_name_and_verified(cache: Path) -> None:
    path, sha = _gguf(cache / "models" / "ssa-test.gguf")
    register_model("ssa-test", path, sha, {"base": "b"})
    data = json.loads(registry_path().read_text())
    assert data["format"] == "ponder.models/1" and data["models"]["ssa-test"]["sha256"] == sha
    backend = ChainConfig.from_dict(SSA_CHAIN).build_backends()["aggregator"]
    assert Path(str(backend.model_path)) == path.resolve() and backend.sha256 == sha
    assert prepare_model(backend.model_path, sha256=backend.sha256) == path.resolve()
    info = backend_model_info(LocalBackendConfig(model="ssa-test"))
    assert (info.name, info.sha256) == ("ssa-test", sha)
    path.write_bytes(b"GGUF changed")  # a file that no longer matches its registry entry
    with pytest.raises(ModelIntegrityError):
        prepare_model(backend.model_path, sha256=backend.sha256)


def test_registering_again_replaces_and_keeps_the_others(cache: Path) -> None:
    a, sa = _gguf(cache / "models" / "a.gguf", b"a")
    b, sb = _gguf(cache / "models" / "b.gguf", b"b")
    register_model("a", a, sa)
    register_model("b", b, sb)
    register_model("a", b, sb)
    assert resolve_model("a").sha256 == sb and resolve_model("b").sha256 == sb


def test_unknown_names_list_the_choices_with_the_field(cache: Path) -> None:
    with pytest.raises(ConfigError) as err:
        ChainConfig.from_dict(SSA_CHAIN).build_backends()
    assert err.value.field == "roles.aggregator.model"
    assert "ssa-test" in str(err.value) and "qwen2.5-coder-0.5b-instruct" in str(err.value)


def test_builtin_names_resolve_to_their_spec_and_cannot_be_taken(cache: Path) -> None:
    backend = LocalBackendConfig(model=SAMPLER_1_5B.name).build()
    assert backend.spec == SAMPLER_1_5B and backend.model_path is None
    path, sha = _gguf(cache / "x.gguf")
    with pytest.raises(ConfigError, match="built-in"):
        register_model(SAMPLER_1_5B.name, path, sha)


def test_model_and_model_path_together_are_refused() -> None:
    with pytest.raises(ConfigError, match="either model"):
        ChainConfig.from_dict({"backend": {"kind": "local", "model": "a", "model_path": "b"}})


def test_example_trained_chain_is_valid() -> None:
    cfg = ChainConfig.load(
        Path(__file__).resolve().parents[2] / "examples/chains/ssa8-trained.yaml"
    )
    agg = cfg.roles["aggregator"]
    assert isinstance(agg, LocalBackendConfig) and agg.model == "ssa-0.5b-rft"


def test_train_without_the_train_venv_says_how_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PONDER_TRAIN_VENV", str(tmp_path / "no-venv"))
    rc = main(["ssa", "train", "--data", str(tmp_path / "rft.jsonl")])
    err = capsys.readouterr().err
    assert rc == 1 and "scripts/setup-train-venv.sh" in err and "torch" in err
