"""Fixtures of the train-venv tests: the default model's tokenizer on a tiny random Qwen2 model.

These tests need torch, transformers and peft, so they run only in the train venv
(scripts/setup-train-venv.sh), as a subprocess of tests/integration/test_train_suite.py. The
tokenizer (and chat template) is the default model's, from its prepared HF copy (the setup
script prepares it with `ponder prepare-vllm`); a missing copy fails, it never skips.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ponder.aggregator.ssa import SSA
from ponder.backends.local.model import model_path
from ponder.backends.vllm_model import converted_dir_for
from ponder.protocol.actions import Outcome, Task

QUESTIONS = [
    ("q1", "Tom has 3 apples and buys 4 more. How many apples does he have?", "7", ["7", "6"]),
    ("q2", "A box holds 5 pens. How many pens are in 3 boxes?", "15", ["8", "15", "15"]),
    ("q3", "Sara reads 10 pages a day. How many pages in 4 days?", "40", ["40", "14"]),
    ("q4", "A cake is cut into 8 slices and 3 are eaten. How many are left?", "5", ["5", "11"]),
]


@pytest.fixture(scope="session")
def hf_default() -> Path:
    path = converted_dir_for(model_path())
    if not (path / "config.json").is_file() or not (path / "tokenizer.json").is_file():
        pytest.fail(
            f"no prepared HF copy of the default model at {path}: run scripts/setup-train-venv.sh "
            "(it runs `ponder prepare-vllm`) first"
        )
    return path


@pytest.fixture(scope="session")
def tokenizer(hf_default: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(hf_default))


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory, hf_default: Path, tokenizer: Any) -> Path:
    """A randomly initialised 2-layer Qwen2 (hidden 64) with the default model's tokenizer."""
    import torch
    from transformers import AutoConfig, Qwen2Config, Qwen2ForCausalLM

    real = AutoConfig.from_pretrained(str(hf_default))
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=real.vocab_size,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        # with the default 0.02 the tied output embedding caps every logit near 1, so no LoRA
        # step could move the loss far from log(vocab)
        initializer_range=0.2,
        bos_token_id=real.bos_token_id,
        eos_token_id=real.eos_token_id,
    )
    out = tmp_path_factory.mktemp("tiny-qwen2")
    Qwen2ForCausalLM(cfg).save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def ssa_messages(question: str, answers: list[str]) -> list[dict[str, Any]]:
    outs = [Outcome(answer=a, text=f"Working: the result is {a}. \\boxed{{{a}}}") for a in answers]
    req, _ = SSA().request(Task(question), outs)
    return [dict(m) for m in req.messages or ()]


def rft_rows() -> list[dict[str, Any]]:
    rows = []
    for qid, question, gold, answers in QUESTIONS:
        target = f"Checking the candidates: the right count is {gold}. \\boxed{{{gold}}}"
        rows.append(
            {
                "id": qid,
                "question_id": qid,
                "kind": "teaching",
                "messages": ssa_messages(question, answers),
                "gold": gold,
                "candidates": answers,
                "majority": answers[0],
                "targets": [{"text": target, "answer": gold, "source": "aggregator", "tokens": 0}],
                "samples": [],
            }
        )
    long = dict(rows[0], id="long")
    long["targets"] = [{"text": "word " * 3000, "answer": None, "source": "candidate"}]
    rows.append(long)  # longer than the tests' max_length: dropped and counted
    return rows


@pytest.fixture(scope="session")
def rft_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rft") / "rft.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rft_rows()))
    return path


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, rft_file: Path, tiny_base: Path) -> Path:
    """``ponder ssa train`` on the tiny base: 4 pairs (one more dropped as too long), 3 epochs,
    one pair per step, one thread."""
    from ponder.cli import main

    out = tmp_path_factory.mktemp("adapters") / "ssa-tiny"
    args = ["ssa", "train", "--data", str(rft_file), "--base", str(tiny_base), "--out", str(out),
            "--name", "ssa-tiny", "--r", "8", "--lr", "1e-2", "--epochs", "3", "--quiet",
            "--grad-accum", "1", "--max-length", "1024", "--threads", "1",
            "--no-gradient-checkpointing"]  # fmt: skip
    assert main(args) == 0
    return out
