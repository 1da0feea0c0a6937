"""GRPO on a tiny model: a reward the policy can earn rises, the files match `ssa train`'s, the
KL term is measured, a run can start from an RFT adapter, and an interrupted run resumes from its
checkpoint to the same adapter as an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ponder.cli import main
from ponder.errors import ConfigError
from ponder.learning.ssa.sft import render_prompt
from tests.train.conftest import rft_rows


@pytest.fixture(scope="module")
def ssa_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four examples in the `ponder ssa data` format."""
    path = tmp_path_factory.mktemp("grpo") / "ssa.jsonl"
    keys = ("question_id", "kind", "messages", "gold", "candidates", "majority")
    rows = [{k: r[k] for k in keys} for r in rft_rows() if r["id"] != "long"]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def half_space(tiny_base: Path) -> Any:
    """A mask of the tokens whose embedding leans along one random direction (half the vocab):
    a reward over them is learnable by a low-rank change of the hidden state, which parity or
    any set unrelated to the embeddings is not."""
    import torch
    from transformers import AutoModelForCausalLM

    emb = AutoModelForCausalLM.from_pretrained(str(tiny_base)).get_input_embeddings().weight
    u = torch.randn(emb.shape[1], generator=torch.Generator().manual_seed(0))
    return (emb.detach() @ u) > 0


def share_reward(mask: Any) -> Any:
    def reward(text: str, gold: str, token_ids: list[int]) -> float:
        del text, gold
        return sum(bool(mask[t]) for t in token_ids) / max(1, len(token_ids))

    return reward


def p_first(model: Any, tokenizer: Any, data: Path, mask: Any) -> float:
    """Mean probability mass on ``mask``'s tokens at the first completion position."""
    import torch

    rows = [json.loads(line) for line in data.read_text().splitlines()]
    total = 0.0
    with torch.no_grad():
        for r in rows:
            ids = tokenizer(render_prompt(tokenizer, r["messages"]), add_special_tokens=False)
            logits = model(input_ids=torch.tensor([ids["input_ids"]])).logits[0, -1].float()
            total += float(torch.softmax(logits, -1)[mask].sum())
    return total / len(rows)


def test_grpo_raises_a_learnable_reward(
    tmp_path: Path, tiny_base: Path, tokenizer: Any, ssa_data: Path
) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from ponder.learning.ssa.grpo import GRPOSettings, grpo_ssa

    mask = half_space(tiny_base)
    out = tmp_path / "half"
    settings = GRPOSettings(steps=8, prompts_per_step=2, group=4, max_new_tokens=4, lr=2e-2,
                            r=8, threads=1, gradient_checkpointing=False)  # fmt: skip
    meta = grpo_ssa(ssa_data, tiny_base, out, settings, reward=share_reward(mask), progress=False)
    base = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32)
    before = p_first(base, tokenizer, ssa_data, mask)
    tuned = PeftModel.from_pretrained(base, str(out))
    after = p_first(tuned, tokenizer, ssa_data, mask)
    log = [json.loads(line) for line in (out / "grpo_log.jsonl").read_text().splitlines()]
    assert meta["method"] == "grpo" and meta["steps"] == len(log) == 8
    assert meta["examples"]["completions"] == 8 * 2 * 4 and meta["examples"]["prompts"] == 4
    assert after > before + 0.05, (before, after, [e["reward"] for e in log])
    assert meta["reward_second_half"] > meta["reward_first_half"], [e["reward"] for e in log]
    assert all(e["gen_s"] > 0 and e["completion_tokens"] > 0 for e in log)


def test_cli_run_writes_an_exportable_adapter(
    tmp_path: Path, tiny_base: Path, ssa_data: Path
) -> None:
    from ponder.learning.ssa.train import read_meta

    out = tmp_path / "cli"
    args = ["ssa", "grpo", "--data", str(ssa_data), "--base", str(tiny_base), "--out", str(out),
            "--name", "grpo-tiny", "--steps", "2", "--group", "3", "--max-new-tokens", "8",
            "--beta", "0.1", "--r", "4", "--threads", "1", "--no-gradient-checkpointing",
            "--quiet"]  # fmt: skip
    assert main(args) == 0
    meta = read_meta(out)  # what `ponder ssa export` reads
    assert meta["name"] == "grpo-tiny" and meta["base"]["dir"] == str(tiny_base)
    assert meta["hyperparameters"]["beta"] == 0.1 and meta["hyperparameters"]["group"] == 3
    assert (out / "adapter_model.safetensors").is_file()
    log = [json.loads(line) for line in (out / "grpo_log.jsonl").read_text().splitlines()]
    assert len(log) == 2
    # answer correctness on a random model: a reward in [0, 1]; KL only where a group had signal
    assert all(0.0 <= e["reward"] <= 1.0 for e in log)
    assert all((e["kl"] is None) == (e["groups_with_signal"] == 0) for e in log), log
    assert main(args) == 2  # the same --out again is refused without --force


def test_grpo_continues_an_rft_adapter(
    tmp_path: Path, trained: Path, tiny_base: Path, ssa_data: Path
) -> None:
    from safetensors import safe_open

    from ponder.learning.ssa.grpo import GRPOSettings, grpo_ssa

    out = tmp_path / "from-rft"
    settings = GRPOSettings(steps=1, group=2, max_new_tokens=4, threads=1,
                            gradient_checkpointing=False)  # fmt: skip
    meta = grpo_ssa(ssa_data, tiny_base, out, settings, init_adapter=trained, progress=False)
    assert meta["init_adapter"]["name"] == "ssa-tiny"
    with safe_open(str(trained / "adapter_model.safetensors"), "pt") as f:
        before = set(f.keys())
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        assert set(f.keys()) == before  # the same adapter (rank 8), trained further
    other = tmp_path / "other-base"
    other.mkdir()
    (other / "config.json").write_text((tiny_base / "config.json").read_text())
    with pytest.raises(ConfigError, match="init_adapter"):
        grpo_ssa(ssa_data, other, tmp_path / "x", settings, init_adapter=trained, progress=False)


def test_shared_prompt_forward_equals_the_full_one(tiny_base: Path) -> None:
    """One prompt forward with its cache repeated for G completions: the same log-probabilities
    and the same gradient as G full sequences, and the same samples for the same seed."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from ponder.learning.ssa.grpo import GRPOSettings, group_logps, sample_group

    model = AutoModelForCausalLM.from_pretrained(str(tiny_base), dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj", "down_proj"]))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)  # a trained-looking adapter, not the zero init
    torch.manual_seed(0)
    prompt = torch.randint(0, 5000, (1, 40))
    comps = torch.randint(0, 5000, (3, 9))
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    grads = []
    logps = []
    for shared in (True, False):
        model.zero_grad()
        logp = group_logps(torch, model, prompt, comps, mask, shared=shared)
        (logp * mask).sum().backward()
        logps.append(logp.detach() * mask)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert torch.allclose(logps[0], logps[1], atol=1e-4), (logps[0] - logps[1]).abs().max()
    assert grads[0].keys() == grads[1].keys() and grads[0]
    for name in grads[0]:
        assert torch.allclose(grads[0][name], grads[1][name], atol=1e-4, rtol=1e-3), name
    s = GRPOSettings(group=3, max_new_tokens=5)
    model.eval()
    with torch.no_grad():
        torch.manual_seed(7)
        a = sample_group(torch, model, prompt, s, {0}, 0, shared=True)
        torch.manual_seed(7)
        b = sample_group(torch, model, prompt, s, {0}, 0, shared=False)
    assert a.shape == (3, 45) and torch.equal(a, b)


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_exactly(tmp_path: Path, tiny_base: Path, ssa_data: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from ponder.learning.ssa.grpo import GRPOSettings, grpo_ssa
    from ponder.learning.ssa.grpo_checkpoint import checkpoint_path

    mask = half_space(tiny_base)
    reward = share_reward(mask)
    settings = GRPOSettings(steps=4, prompts_per_step=2, group=3, max_new_tokens=4, lr=2e-2,
                            r=4, beta=0.1, threads=1, gradient_checkpointing=False)  # fmt: skip
    whole = grpo_ssa(ssa_data, tiny_base, tmp_path / "whole", settings, reward=reward,
                     progress=False, save_every=1)  # fmt: skip
    assert not (tmp_path / "whole" / "checkpoint").exists()  # removed when the run finished
    assert whole["resumed_from_step"] is None

    calls = 0

    def dies_in_step_3(text: str, gold: str, token_ids: list[int]) -> float:
        nonlocal calls
        calls += 1
        if calls > 2 * 2 * 3:  # two steps of 2 prompts x 3 completions
            raise Interrupt
        return reward(text, gold, token_ids)

    out = tmp_path / "resumed"
    with pytest.raises(Interrupt):
        grpo_ssa(ssa_data, tiny_base, out, settings, reward=dies_in_step_3, progress=False,
                 save_every=2)  # fmt: skip
    assert checkpoint_path(out).is_file() and not (out / "ponder-ssa.json").exists()
    with pytest.raises(ConfigError, match="--resume continues it"):
        grpo_ssa(ssa_data, tiny_base, out, settings, reward=reward, progress=False)
    other = settings.model_copy(update={"lr": 1e-3})
    with pytest.raises(ConfigError, match=r"resume.*\(lr\)"):
        grpo_ssa(ssa_data, tiny_base, out, other, reward=reward, progress=False, resume=True)

    meta = grpo_ssa(ssa_data, tiny_base, out, settings, reward=reward, progress=False,
                    resume=True)  # fmt: skip
    assert meta["resumed_from_step"] == 2 and meta["steps"] == 4
    assert meta["examples"]["completions"] == 4 * 2 * 3
    assert not checkpoint_path(out).exists()
    logs = [
        [json.loads(line) for line in (d / "grpo_log.jsonl").read_text().splitlines()]
        for d in (tmp_path / "whole", out)
    ]
    keys = ("step", "reward", "groups_with_signal", "loss", "kl", "completion_tokens")
    assert [[e[k] for k in keys] for e in logs[0]] == [[e[k] for k in keys] for e in logs[1]]
    # after the first update the adapter differs from the base: the k3 KL is positive
    assert any(e["kl"] is not None and e["kl"] > 0 for e in logs[0][1:]), logs[0]
    a = load_file(str(tmp_path / "whole" / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
