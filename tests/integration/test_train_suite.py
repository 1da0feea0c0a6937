"""Runs the SSA training tests (tests/train) in their own virtual environment.

Training needs torch, transformers and peft, which the main install never needs, so they live in
a separate venv created by scripts/setup-train-venv.sh ($PONDER_TRAIN_VENV, default .venv-train).
This one test runs that venv's pytest as a subprocess and asserts every training test passed
(LoRA steps on a tiny model, the loss mask, and the export round trip through llama.cpp's
converter into the embedded llama-server), so the single README test command covers them. A
missing venv is a failure with instructions, never a skip.
"""

from __future__ import annotations

import pytest

from tests.integration.venv_suite import assert_suite_passes

pytestmark = pytest.mark.integration

EXPECTED = {"tests/train": 13}


def test_train_suite_passes_in_its_own_venv() -> None:
    assert_suite_passes(
        EXPECTED,
        venv_var="PONDER_TRAIN_VENV",
        default_venv=".venv-train",
        flag="PONDER_TRAIN_TESTS",
        what="train",
        setup="scripts/setup-train-venv.sh",
    )
