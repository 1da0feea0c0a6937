"""Export round trip: the tiny trained adapter merged, converted by llama.cpp's own converter,
registered by name, then served by the embedded llama-server (Ponder's local backend) from a
chain that names it; the server renders the SSA prompt exactly as training did."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ponder.backends.local import registry
from ponder.config import ChainConfig
from ponder.learning.ssa.export import export_ssa
from ponder.learning.ssa.sft import render_prompt
from ponder.protocol.requests import GenerationRequest, SamplingParams
from tests.train.conftest import QUESTIONS, ssa_messages

NAME = "ssa-tiny-test"


@pytest.fixture(scope="module")
def exported(
    trained: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[dict[str, Any], Path]]:
    """One export into a temporary models dir and registry (the user's are left alone)."""
    tmp = tmp_path_factory.mktemp("export")
    reg = tmp / "registry.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registry, "registry_path", lambda: reg)
        yield export_ssa(trained, name=NAME, models_dir=tmp, keep_merged=True, quiet=True), reg


def test_merge_changes_the_weights(exported: tuple[dict[str, Any], Path], tiny_base: Path) -> None:
    from safetensors.torch import load_file

    record, _ = exported
    merged = load_file(str(Path(record["merged"]) / "model.safetensors"))
    base = load_file(str(tiny_base / "model.safetensors"))
    key = "model.layers.0.self_attn.q_proj.weight"
    assert merged[key].shape == base[key].shape
    assert (merged[key].float() - base[key].float()).abs().max() > 1e-4
    assert not any("lora" in k for k in merged)


async def test_exported_gguf_is_registered_verified_and_served_by_name(
    exported: tuple[dict[str, Any], Path], tokenizer: Any
) -> None:
    record, reg = exported
    gguf = Path(record["file"])
    digest = hashlib.sha256(gguf.read_bytes()).hexdigest()
    assert record["sha256"] == digest and gguf.name == f"{NAME}.gguf"
    assert gguf.with_name(gguf.name + ".sha256").read_text().split()[0] == digest
    assert json.loads(reg.read_text())["models"][NAME]["sha256"] == digest
    assert record["outtype"] == "q8_0" and "convert_hf_to_gguf.py" in record["converter"]

    cfg = ChainConfig.from_dict(
        {
            "backend": {
                "kind": "local",
                "model": NAME,
                "n_parallel": 1,
                "ctx_per_slot": 2048,
                "threads": 1,
            }
        }  # fmt: skip
    )
    backend = cfg.build_backends()["default"]
    msgs = ssa_messages(QUESTIONS[1][1], QUESTIONS[1][3])
    try:
        await backend.start()
        got = await backend.generate(
            GenerationRequest(messages=tuple(msgs), params=SamplingParams(max_tokens=8))
        )
        assert got.choices[0].completion_tokens > 0 and got.prompt_tokens > 100
        server = backend.server
        assert server is not None
        async with httpx.AsyncClient(timeout=30) as http:
            resp = await http.post(f"{server.url}/apply-template", json={"messages": msgs})
        resp.raise_for_status()
        assert resp.json()["prompt"] == render_prompt(tokenizer, msgs)
    finally:
        await backend.aclose()
