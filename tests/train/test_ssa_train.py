"""SSA LoRA training on a tiny model: the prompt is the inference rendering, only the target
carries loss, a few steps lower the loss, and the files the export reads are written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ponder.backends.local.model import model_path
from ponder.cli import main
from ponder.learning.ssa.sft import IGNORE, Pair, encode, end_token_ids, render_prompt
from tests.train.conftest import QUESTIONS, ssa_messages

TARGET = "The candidates disagree; 3 + 4 = 7. \\boxed{7}"


def test_prompt_is_the_chat_template_and_only_the_target_is_labelled(tokenizer: Any) -> None:
    msgs = ssa_messages(QUESTIONS[0][1], QUESTIONS[0][3])
    enc = encode(tokenizer, Pair(msgs, TARGET, "aggregator", "x"), 4096, end_token_ids(tokenizer))
    assert enc is not None
    prompt = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert prompt == render_prompt(tokenizer, msgs)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    n = len(prompt_ids)
    assert enc.input_ids[:n] == prompt_ids
    assert enc.labels[:n] == [IGNORE] * n
    assert all(label != IGNORE for label in enc.labels[n:])
    assert tokenizer.decode(enc.labels[n:]) == TARGET + "<|im_end|>"
    assert enc.labels[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_default_gguf_chat_template_equals_the_hf_one(tokenizer: Any) -> None:
    """llama-server renders the GGUF's template; training renders the HF tokenizer's."""
    from gguf import GGUFReader

    gguf = model_path()
    assert gguf.is_file(), f"{gguf} missing: run `ponder setup` first"
    reader = GGUFReader(str(gguf))
    assert reader.fields["tokenizer.chat_template"].contents() == tokenizer.chat_template


def test_a_few_lora_steps_lower_the_loss(trained: Path) -> None:
    meta = json.loads((trained / "ponder-ssa.json").read_text())
    log = [json.loads(line) for line in (trained / "train_log.jsonl").read_text().splitlines()]
    assert meta["format"] == "ponder.ssa/1" and meta["name"] == "ssa-tiny"
    assert meta["steps"] == len(log) == 12
    assert meta["examples"]["used"] == 4 and meta["examples"]["dropped_too_long"] == 1
    assert meta["examples"]["by_source"] == {"aggregator": 4} and meta["examples"]["seen"] == 12
    assert meta["hyperparameters"]["r"] == 8 and meta["device"] == "cpu"
    first, last = log[0]["loss"], sum(e["loss"] for e in log[-3:]) / 3
    assert last < 0.8 * first, [e["loss"] for e in log]
    assert meta["final_loss"] == log[-1]["loss"] or abs(meta["final_loss"] - log[-1]["loss"]) < 1e-4
    assert all(e["s"] > 0 and e["target_tokens"] > 0 for e in log)
    assert (trained / "adapter_model.safetensors").is_file()
    assert json.loads((trained / "adapter_config.json").read_text())["r"] == 8
    print(f"tiny model: {meta['s_per_step']} s/step over {meta['steps']} steps")


def test_training_an_existing_adapter_dir_again_is_refused(
    trained: Path, rft_file: Path, tiny_base: Path, capsys: Any
) -> None:
    rc = main(["ssa", "train", "--data", str(rft_file), "--base", str(tiny_base),
               "--out", str(trained), "--quiet"])  # fmt: skip
    assert rc == 2 and "--force" in capsys.readouterr().err


def test_last_layers_puts_lora_on_the_top_layers_only(
    tmp_path: Path, rft_file: Path, tiny_base: Path
) -> None:
    from safetensors import safe_open

    out = tmp_path / "top"
    args = ["ssa", "train", "--data", str(rft_file), "--base", str(tiny_base), "--out", str(out),
            "--r", "8", "--lr", "1e-2", "--epochs", "2", "--quiet", "--grad-accum", "1",
            "--max-length", "1024", "--threads", "1", "--last-layers", "1"]  # fmt: skip
    assert main(args) == 0
    meta = json.loads((out / "ponder-ssa.json").read_text())
    assert meta["hyperparameters"]["last_layers"] == 1
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert keys and all(".layers.1." in k for k in keys), keys  # the tiny base has layers 0, 1
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert sum(e["loss"] for e in log[-2:]) / 2 < log[0]["loss"], [e["loss"] for e in log]


def test_target_loss_equals_the_models_own_loss(tiny_base: Path, tokenizer: Any) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from ponder.learning.ssa.train import target_loss

    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32)
    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (2, 40))
    labels = ids.clone()
    labels[0, :25] = -100  # prompts of different lengths; a padded tail
    labels[1, :30] = -100
    labels[1, 36:] = -100
    mask = torch.ones_like(ids)
    mask[1, 36:] = 0
    batch = {"input_ids": ids, "labels": labels, "attention_mask": mask}
    with torch.no_grad():
        ours = float(target_loss(torch, model, batch))
        theirs = float(model(**batch).loss)
    assert abs(ours - theirs) < 1e-4 * max(1.0, theirs), (ours, theirs)
