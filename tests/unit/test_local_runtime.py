"""Choosing the local backend's llama.cpp runtime (prebuilt wheel vs native build), no model."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from ponder.backends.local import LocalBackend
from ponder.backends.local import runtime as rt
from ponder.backends.local.prebuilt_server import build_params, parse_args
from ponder.backends.local.server import LlamaServer
from ponder.backends.local.toolchain import installed_server
from ponder.cli import main as cli_main
from ponder.errors import ConfigError, ServerStartError


@pytest.fixture(autouse=True)
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PONDER_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PONDER_LLAMA_SERVER", raising=False)
    monkeypatch.delenv(rt.RUNTIME_ENV, raising=False)


def _fake_native() -> Path:
    path = installed_server()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 1\n")
    path.chmod(0o755)
    return path


def _speed(name: str, single: float, parallel: float) -> rt.RuntimeSpeed:
    return rt.RuntimeSpeed(name, "v", single, parallel, 8)  # type: ignore[arg-type]


def test_auto_prefers_the_prebuilt_wheel_when_nothing_is_built():
    assert rt.auto_order() == ["prebuilt"]
    [runtime] = rt.choose_runtimes("auto")
    assert runtime.name == "prebuilt"
    assert runtime.launcher == (sys.executable, "-P", str(rt.PREBUILT_SCRIPT))
    assert rt.PREBUILT_SCRIPT.is_file()
    assert runtime.version.startswith("xllamacpp ")


def test_a_built_but_unmeasured_native_runtime_is_only_the_fallback():
    _fake_native()
    assert rt.auto_order() == ["prebuilt", "native"]


def test_auto_prefers_native_once_measured_faster_on_this_machine():
    binary = _fake_native()
    rt.save_measurement([_speed("prebuilt", 20, 60), _speed("native", 30, 80)])
    assert rt.measured_faster() == "native"
    runtimes = rt.choose_runtimes("auto")
    assert [r.name for r in runtimes] == ["native", "prebuilt"]
    assert runtimes[0].launcher == (str(binary),)


def test_auto_keeps_prebuilt_when_it_was_measured_faster():
    _fake_native()
    rt.save_measurement([_speed("prebuilt", 26, 70), _speed("native", 24, 66)])
    assert rt.auto_reason() == (
        ["prebuilt", "native"],
        "measured faster than the native build here",
    )


def test_a_measurement_from_another_machine_is_ignored():
    _fake_native()
    rt.save_measurement([_speed("prebuilt", 20, 60), _speed("native", 30, 80)])
    data = json.loads(rt.preference_file().read_text())
    data["machine"]["cpu"] = "some other CPU"
    rt.preference_file().write_text(json.dumps(data))
    assert rt.measured_faster() is None
    assert rt.auto_order()[0] == "prebuilt"


def test_env_var_chooses_the_runtime_and_bad_names_list_the_choices(monkeypatch):
    monkeypatch.setenv(rt.RUNTIME_ENV, "prebuilt")
    assert rt.resolve_choice("auto") == "prebuilt"
    assert rt.resolve_choice("native") == "native"  # an explicit choice wins over the env var
    monkeypatch.setenv(rt.RUNTIME_ENV, "fast")
    with pytest.raises(ConfigError, match="valid choices: auto, prebuilt, native"):
        rt.resolve_choice(None)


def test_native_without_build_says_how_to_build_it():
    with pytest.raises(rt.RuntimeUnavailable, match="ponder setup --native"):
        rt.native_runtime(build=False)


def test_own_binary_in_env_is_preferred_by_auto(monkeypatch, tmp_path):
    own = tmp_path / "my-llama-server"
    own.write_text("#!/bin/sh\n")
    own.chmod(0o755)
    monkeypatch.setenv("PONDER_LLAMA_SERVER", str(own))
    first = rt.choose_runtimes("auto")[0]
    assert (first.name, first.launcher, first.version) == ("native", (str(own),), "own binary")


def test_prebuilt_server_maps_llama_server_flags_onto_xllamacpp_params():
    args = parse_args(
        ["-m", "/m.gguf", "--host", "127.0.0.1", "--port", "8123", "-np", "4", "-c", "8192"]
        + ["-t", "2", "--alias", "local", "--no-repack"]
    )
    p = build_params(args)
    assert p.model.path == "/m.gguf"  # type: ignore[attr-defined]
    assert (p.port, p.n_parallel, p.n_ctx) == (8123, 4, 8192)  # type: ignore[attr-defined]
    assert p.cpuparams.n_threads == p.cpuparams_batch.n_threads == 2  # type: ignore[attr-defined]
    assert p.model_alias == {"local"} and p.no_extra_bufts is True  # type: ignore[attr-defined]
    assert list(p.hostnames) == ["127.0.0.1"]  # type: ignore[attr-defined]


def test_llama_server_command_is_the_same_for_both_runtimes(tmp_path):
    model = tmp_path / "m.gguf"
    pre = LlamaServer(rt.prebuilt_runtime(), model, n_parallel=2, ctx_per_slot=512, threads=2)
    nat = LlamaServer(Path("/opt/llama-server"), model, n_parallel=2, ctx_per_slot=512, threads=2)
    assert pre.command()[:3] == [sys.executable, "-P", str(rt.PREBUILT_SCRIPT)]
    assert pre.command()[3:] == nat.command()[1:]
    assert "-c" in nat.command() and nat.command()[nat.command().index("-c") + 1] == "1024"
    assert pre.what == "llama-server (prebuilt runtime)"


FAKE_SERVER = textwrap.dedent(
    """
    import sys
    from http.server import BaseHTTPRequestHandler, HTTPServer
    port = int(sys.argv[sys.argv.index("--port") + 1])
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b'{"status":"ok"}')
        def log_message(self, *a): pass
    HTTPServer(("127.0.0.1", port), H).serve_forever()
    """
)


async def test_auto_falls_back_to_the_next_runtime_and_describe_says_which(tmp_path, monkeypatch):
    fake = tmp_path / "fake_server.py"
    fake.write_text(FAKE_SERVER)
    broken = rt.Runtime("native", ("/bin/false",), "broken", "/bin/false")
    working = rt.Runtime("prebuilt", (sys.executable, str(fake)), "fake 1.0", "test")
    monkeypatch.setattr("ponder.backends.local.choose_runtimes", lambda *a, **k: [broken, working])
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    backend = LocalBackend(model, quiet=True, n_parallel=1, ctx_per_slot=256)
    assert backend.describe()["runtime"] is None  # not started yet
    try:
        await backend.start()
        info = backend.describe()
        assert info["runtime"] == "prebuilt" and info["runtime_version"] == "fake 1.0"
        assert info["model"] == "m.gguf"
    finally:
        await backend.aclose()


async def test_when_every_runtime_fails_the_error_carries_each_failure(tmp_path, monkeypatch):
    broken = rt.Runtime("native", ("/bin/false",), "broken", "/bin/false")
    monkeypatch.setattr("ponder.backends.local.choose_runtimes", lambda *a, **k: [broken, broken])
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    backend = LocalBackend(model, quiet=True, n_parallel=1, ctx_per_slot=256)
    with pytest.raises(ServerStartError, match=r"native runtime\) exited with code 1") as info:
        await backend.start()
    assert str(info.value).count("exited with code 1") == 2


def test_setup_reports_the_runtimes_and_which_one_auto_uses(tmp_path, capsys):
    model = tmp_path / "m.gguf"
    model.write_bytes(b"GGUF")
    assert cli_main(["setup", "--gguf", str(model), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "prebuilt runtime: xllamacpp " in out
    assert "native runtime: not built; `ponder setup --native`" in out
    assert "runtime used by default (auto): prebuilt (the default; the native build is" in out
    assert f"model: {model}" in out


def test_cli_runtime_flag_is_refused_for_remote_endpoints(capsys):
    code = cli_main(["run", "--base-url", "http://x/v1", "--runtime", "native", "What is 1+1?"])
    assert code == 2
    assert "--runtime applies to the embedded local model only" in capsys.readouterr().err
