"""Fixtures for the real-engine vLLM tests. These run only in the vLLM venv (see
scripts/setup-vllm-venv.sh); the main suite runs them as one subprocess from
tests/integration/test_vllm_suite.py and never imports vllm itself."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")

# The backend's CPU defaults apply: eager mode (no compilation), whole-prompt prefills.
ENGINE_KW = {"max_model_len": 2048, "seed": 0}


@pytest.fixture(scope="session")
def vllm_model_dir() -> str:
    """The default GGUF converted to an HF directory (cached in ~/.cache/ponder/hf)."""
    from ponder.backends.vllm_model import prepare_hf_model

    return str(prepare_hf_model(quiet=True))


@pytest.fixture(scope="session")
async def vllm_backend(vllm_model_dir: str):
    from ponder.backends.vllm_engine import VLLMBackend

    backend = VLLMBackend(vllm_model_dir, quiet=True, **ENGINE_KW)
    await backend.start()
    yield backend
    await backend.aclose()
