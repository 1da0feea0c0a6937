"""``ponder collect`` records the reasoner the chain actually serves, and a resume into another
reasoner's collection is refused before any model starts.

No model is built or downloaded: ``Session.from_config`` is replaced by a session over a fake
backend, and the manifest is built from the chain's config alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ponder.backends.fake import FakeBackend
from ponder.backends.local.model import DEFAULT_MODEL, SAMPLER_1_5B
from ponder.backends.local.registry import register_model
from ponder.cli import main
from ponder.config import OpenAIBackendConfig
from ponder.errors import ConfigError
from ponder.orchestrator.session import Session
from tests.unit.test_learning_collect import _responder


def _fake_sessions(monkeypatch: pytest.MonkeyPatch, backend: FakeBackend) -> list[Any]:
    """Every ``Session.from_config`` serves ``backend`` (no model is built); the configs seen."""
    seen: list[Any] = []
    orig = Session.from_config.__func__  # type: ignore[attr-defined]

    def from_config(cls: type[Session], config: Any, backends: Any = None) -> Session:
        seen.append(config)
        return orig(cls, config, {"default": backend})  # type: ignore[no-any-return]

    monkeypatch.setattr(Session, "from_config", classmethod(from_config))
    return seen


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    return _fake_sessions(monkeypatch, FakeBackend(_responder))


def _collect(tmp: Path, backend: dict[str, Any] | None, *extra: str) -> tuple[int, Path]:
    data = tmp / "d.jsonl"
    data.write_text(json.dumps({"question": "q0", "answer": "#### 4"}) + "\n")
    args = ["collect", "--dataset", str(data), "--out", str(tmp / "c"), "-k", "2", "--quiet"]
    args += ["--max-tokens", "8", "--probe-every", "3", *extra]
    if backend is not None:
        chain = tmp / f"chain-{len(list(tmp.glob('chain-*')))}.yaml"
        chain.write_text(json.dumps({"backend": backend}))
        args += ["-c", str(chain)]
    return main(args), tmp / "c"


def _model(out: Path) -> dict[str, Any]:
    return json.loads((out / "manifest.json").read_text())["model"]  # type: ignore[no-any-return]


def test_a_named_builtin_model_is_the_recorded_reasoner(
    tmp_path: Path, cache: Path, sessions: list[Any]
) -> None:
    rc, out = _collect(tmp_path, {"kind": "local", "model": SAMPLER_1_5B.name})
    assert rc == 0 and len(sessions) == 1
    assert _model(out) == {
        "name": SAMPLER_1_5B.name,
        "file": SAMPLER_1_5B.file_name,
        "sha256": SAMPLER_1_5B.sha256,
    }


def test_a_registered_model_is_recorded_from_its_registry_entry(
    tmp_path: Path, cache: Path, sessions: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    gguf = cache / "models" / "sampler-x.gguf"
    gguf.parent.mkdir(parents=True)
    gguf.write_bytes(b"GGUF fake sampler")
    sha = hashlib.sha256(b"GGUF fake sampler").hexdigest()
    register_model("sampler-x", gguf, sha)

    import ponder.learning.collect.collector as collector

    real_sha256 = collector.file_sha256

    def file_sha256(path: Any) -> str:
        assert Path(path).suffix != ".gguf", "the registry knows the model's sha256"
        return real_sha256(path)

    monkeypatch.setattr(collector, "file_sha256", file_sha256)
    rc, out = _collect(tmp_path, {"kind": "local", "model": "sampler-x"})
    assert rc == 0
    assert _model(out) == {"name": "sampler-x", "file": str(gguf.resolve()), "sha256": sha}


def test_an_endpoint_is_recorded_by_model_id_and_url_without_credentials(
    tmp_path: Path, sessions: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_KEY", "sk-live-abcdef123456")
    backend = {
        "kind": "openai",
        "base_url": "http://alice:pa55@127.0.0.1:8000/v1/?api_key=sk-live-abcdef123456&org=acme"
        "&access_token=t0k#frag",
        "model": "served-model",
        "api_key_env": "MY_KEY",
    }
    rc, out = _collect(tmp_path, backend)
    assert rc == 0
    model = _model(out)
    assert model["name"] == "served-model" and model.get("sha256") is None
    assert model["file"] == "http://127.0.0.1:8000/v1?org=acme"
    text = (out / "manifest.json").read_text()
    assert not any(s in text for s in ("alice", "pa55", "sk-live", "t0k", "frag"))


def test_public_url_and_the_endpoint_model_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ponder.learning.collect.collector import backend_model_info, public_url

    assert public_url("https://u@h.example/v1?sig=1&x=2", ()) == "https://h.example/v1?x=2"
    assert public_url("https://h.example/k/sk-abc123/v1", ["sk-abc123"]) == (
        "https://h.example/k/[redacted]/v1"
    )
    monkeypatch.setenv("PONDER_MODEL", "env-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    info = backend_model_info(OpenAIBackendConfig())
    assert (info.name, info.file, info.sha256) == ("env-model", "http://127.0.0.1:9/v1", None)


def test_a_model_file_wins_and_the_default_chain_keeps_the_default_model(tmp_path: Path) -> None:
    from ponder.config import LocalBackendConfig
    from ponder.learning.collect.collector import backend_model_info

    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF m")
    info = backend_model_info(LocalBackendConfig(model=SAMPLER_1_5B.name), gguf)
    assert (info.name, info.sha256) == ("m", hashlib.sha256(b"GGUF m").hexdigest())
    default = backend_model_info(LocalBackendConfig())
    assert (default.name, default.file, default.sha256) == (
        DEFAULT_MODEL.name,
        DEFAULT_MODEL.file_name,
        DEFAULT_MODEL.sha256,
    )


def test_an_unknown_model_name_names_the_field(cache: Path) -> None:
    from ponder.config import LocalBackendConfig
    from ponder.learning.collect.collector import backend_model_info

    with pytest.raises(ConfigError) as err:
        backend_model_info(LocalBackendConfig(model="no-such-model"))
    assert err.value.field == "backend.model" and SAMPLER_1_5B.name in str(err.value)


def test_resuming_another_reasoners_collection_is_refused_before_any_model_starts(
    tmp_path: Path, cache: Path, sessions: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = _collect(tmp_path, None)  # the default chain: the default 0.5B model
    assert rc == 0 and len(sessions) == 1 and _model(out)["name"] == DEFAULT_MODEL.name
    before = (out / "records.jsonl").read_bytes()
    capsys.readouterr()
    rc, _ = _collect(tmp_path, {"kind": "local", "model": SAMPLER_1_5B.name})
    err = capsys.readouterr().err
    assert rc == 2 and len(sessions) == 1  # refused; no session (no model) was started
    assert f"reasoner ({DEFAULT_MODEL.name} sha256 {DEFAULT_MODEL.sha256} vs" in err
    assert f"{SAMPLER_1_5B.name} sha256 {SAMPLER_1_5B.sha256})" in err and "--out" in err
    assert (out / "records.jsonl").read_bytes() == before
    rc, _ = _collect(tmp_path, None)  # the same reasoner resumes
    assert rc == 0 and len(sessions) == 2


def test_skip_collects_the_questions_after_the_first_n_and_records_it(
    tmp_path: Path, cache: Path, sessions: list[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "d.jsonl"
    rows = [{"question": f"q{i}", "answer": f"#### {i}"} for i in range(5)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base = ["collect", "--dataset", str(data), "-k", "2", "--quiet", "--max-tokens", "8"]
    out = tmp_path / "c"
    assert main([*base, "--out", str(out), "--first", "4", "--skip", "1"]) == 0
    ids = sorted(json.loads(line)["id"] for line in (out / "records.jsonl").open())
    assert ids == ["1", "2", "3"]  # question ids stay the dataset's rows: no clash with 0
    dataset = json.loads((out / "manifest.json").read_text())["dataset"]
    assert (dataset["first"], dataset["skip"]) == (4, 1)
    assert main([*base, "--out", str(tmp_path / "bad"), "--skip", "-1"]) == 2
    assert "skip" in capsys.readouterr().err and not (tmp_path / "bad").exists()
