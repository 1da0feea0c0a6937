"""Shared fixtures. Integration tests use one real llama.cpp server (default model) per session."""

from __future__ import annotations

import os

import pytest

from ponder.backends.local import LocalBackend

# tests/vllm_real needs the separate vLLM venv; tests/integration/test_vllm_suite.py runs it there.
# tests/train needs the train venv (torch, peft); tests/integration/test_train_suite.py runs it.
collect_ignore = [] if os.environ.get("PONDER_VLLM_TESTS") == "1" else ["vllm_real"]
if os.environ.get("PONDER_TRAIN_TESTS") != "1":
    collect_ignore.append("train")


@pytest.fixture(scope="session")
async def local_backend():
    """The embedded backend on the real default model (assembled by `ponder setup` or CI), on the
    default runtime, or the one ``$PONDER_LOCAL_RUNTIME`` names (CI reruns a subset on native)."""
    backend = LocalBackend(quiet=True, n_parallel=8, ctx_per_slot=4096)
    await backend.start()
    yield backend
    await backend.aclose()
