"""GRPO for the SSA aggregator: reinforce its own completions that reach the gold answer.

Use ``grpo_ssa(data, base, out, settings)`` or ``ponder ssa grpo`` on the examples ``ponder ssa
data`` wrote (train questions, the inference prompt, ``gold`` on each), from the base model or
from an adapter ``ponder ssa train`` made (``init_adapter``: RFT first, then RL, as is usual).
Train venv only (torch, transformers, peft); the output directory is a ``ponder ssa train``
output in every respect (``ponder ssa export`` serves it).

One optimizer step (Shao et al., 2024, GRPO; the SSA paper trains its aggregator this way):

1. ``prompts_per_step`` examples (shuffled, cycled) are rendered exactly as inference renders
   them (``ponder.learning.ssa.sft.render_prompt``), and the current policy samples ``group``
   completions of each (``temperature``, ``top_p``, ``max_new_tokens``; up to the end-of-turn
   token);
2. each completion is rewarded (``answer_reward``: 1 if its final answer is the gold one);
3. advantages are group-relative (``group_advantages``); a group whose rewards are all equal is
   skipped (no signal, no backward pass);
4. the loss is the policy-gradient surrogate ``-A * exp(logp - logp.detach())`` per completion
   token, plus ``beta`` times the k3 estimate of KL to the base model (the adapter disabled),
   summed over the step's tokens and divided by their number (a token-level mean, as DAPO).
   One update per batch of samples, so the PPO ratio is 1 and clipping never binds; it is not
   implemented.

The G completions of a prompt share it: it is prefilled once for sampling and run once for the
loss, its key/value cache repeated for the G completions (``sample_group``, ``group_logps``;
exact, checked against the per-sequence forward by tests), so a step costs about one prompt
forward per prompt, not G.

A plain loop rather than trl's GRPO trainer for the reason ``ssa_train`` gives: the prompt must
be the inference rendering, the answer graded by Ponder's grader, and the step cheap to measure
on a CPU. Writes ``grpo_log.jsonl`` (one line a step: mean reward, groups with signal, loss,
KL, completion tokens, seconds generating and training) beside the adapter and
``ponder-ssa.json`` (``method: grpo``). Every ``save_every`` steps it checkpoints the run
(``ssa_grpo_checkpoint``); ``resume=True`` (``--resume``) continues an interrupted run exactly
where its last checkpoint left it.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.behaviour.records import file_sha256
from ponder.errors import ConfigError, InputError
from ponder.learning.ssa.grpo_checkpoint import (
    RunState,
    checkpoint_path,
    identity,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from ponder.learning.ssa.grpo_core import Reward, answer_reward, group_advantages
from ponder.learning.ssa.grpo_policy import cut_at_end, group_logps, sample_group
from ponder.learning.ssa.rft_run import manifest_path, read_ssa_examples
from ponder.learning.ssa.sft import render_prompt
from ponder.learning.ssa.train import (
    DEFAULT_TARGETS,
    META,
    META_FORMAT,
    base_info,
    checkpointing,
    lora_model,
    read_meta,
    run_info,
    setup_run,
    step_bar,
)

LOG = "grpo_log.jsonl"


class GRPOSettings(BaseModel):
    """GRPO sampling, LoRA and optimisation settings (recorded in ``ponder-ssa.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(20, ge=1)
    prompts_per_step: int = Field(2, ge=1)
    group: int = Field(4, ge=2, description="completions sampled per prompt")
    temperature: float = Field(1.0, gt=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_new_tokens: int = Field(128, ge=1)
    max_prompt_length: int = Field(3072, ge=16)
    """Longer prompts are dropped and counted."""
    beta: float = Field(0.0, ge=0.0)
    """Weight of the KL penalty to the base (0: none, as DAPO and Dr. GRPO)."""
    scale_advantages: bool = True
    lr: float = Field(2e-5, gt=0)
    r: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """0 by default: the completions' log-probabilities are then those they were sampled with."""
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    last_layers: int | None = Field(None, ge=1)
    gradient_checkpointing: bool = True
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"


def grpo_ssa(
    data: str | Path,
    base: str | Path,
    out: str | Path,
    settings: GRPOSettings | None = None,
    *,
    init_adapter: str | Path | None = None,
    name: str | None = None,
    reward: Reward = answer_reward,
    progress: bool = True,
    force: bool = False,
    resume: bool = False,
    save_every: int = 10,
) -> dict[str, Any]:
    """Train by GRPO on ``data`` (a ``ponder ssa data`` file) into ``out``; return the
    ``ponder-ssa.json`` contents. ``save_every`` steps (0: never) the run is checkpointed in
    ``out``; ``resume`` continues from that checkpoint (or starts, if there is none), ``force``
    starts over. See the module doc."""
    import torch

    s = settings or GRPOSettings()
    data, base, out = Path(data), Path(base).expanduser(), Path(out).expanduser()
    init = Path(init_adapter).expanduser() if init_adapter else None
    if not (base / "config.json").is_file():
        raise InputError(f"base {base} is not a Hugging Face model directory (no config.json)")
    if (out / META).is_file() and not force:
        raise ConfigError("out", f"{out} already holds a trained adapter (use --force to replace)")
    if checkpoint_path(out).is_file() and not (resume or force):
        raise ConfigError(
            "resume",
            f"{out} holds an unfinished run ({checkpoint_path(out)}): --resume continues it, "
            "--force starts over",
        )
    init_meta = read_meta(init) if init is not None else None
    if init_meta is not None and Path(init_meta["base"]["dir"]).resolve() != base.resolve():
        raise ConfigError(
            "init_adapter",
            f"{init} was trained on {init_meta['base']['dir']}, not on the base {base}",
        )
    examples, data_manifest = read_ssa_examples(data)
    if not examples:
        raise InputError(f"{data} has no SSA examples (make it with `ponder ssa data`)")
    t_start = time.perf_counter()
    device, dtype, tok, ends = setup_run(torch, base, s, progress)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else next(iter(ends), 0)

    prompts: list[tuple[list[int], str]] = []
    dropped = 0
    for ex in examples:
        ids = list(tok(render_prompt(tok, ex.messages), add_special_tokens=False)["input_ids"])
        if len(ids) > s.max_prompt_length:
            dropped += 1
        else:
            prompts.append((ids, ex.gold))
    if not prompts:
        raise InputError(
            f"no usable prompts: all {len(examples)} are longer than {s.max_prompt_length} tokens"
        )

    model = lora_model(base, s, device, dtype, init_adapter=init)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(trainable, lr=s.lr, weight_decay=0.0)
    rng = random.Random(s.seed)
    ident = identity(s.model_dump(), file_sha256(data), base, init)
    state = RunState()
    if resume and checkpoint_path(out).is_file():
        state = load_checkpoint(torch, out, ident, model, optim)
        rng.setstate(state.rng_state)
    elif force:
        remove_checkpoint(out)
    resumed_from, earlier_s = state.step, state.elapsed_s
    queue = state.queue

    def next_prompt() -> int:
        if not queue:
            queue.extend(rng.sample(range(len(prompts)), len(prompts)))
        return queue.pop()

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / LOG
    log_path.write_text("".join(json.dumps(e) + "\n" for e in state.step_log))
    bar = step_bar(s.steps, "ssa grpo", progress)
    bar.update(state.step)
    step_log, rewards_seen = state.step_log, state.rewards_seen
    try:
        with log_path.open("a", encoding="utf-8") as log:
            for step in range(state.step, s.steps):
                entry = _step(torch, model, optim, trainable, prompts, next_prompt, s, ends,
                              pad_id, tok, reward, device, step)  # fmt: skip
                rewards_seen.extend(entry.pop("rewards"))
                step_log.append(entry)
                log.write(json.dumps(entry) + "\n")
                log.flush()
                bar.update(1)
                bar.set_postfix(reward=f"{entry['reward']:.2f}", s_step=f"{entry['s']:.0f}")
                state.step = step + 1
                if save_every and state.step % save_every == 0 and state.step < s.steps:
                    state.rng_state = rng.getstate()
                    state.elapsed_s = earlier_s + time.perf_counter() - t_start
                    save_checkpoint(torch, out, ident, model, optim, state)
    finally:
        bar.close()

    model.save_pretrained(str(out))
    half = max(1, len(step_log) // 2)
    meta = {
        "format": META_FORMAT,
        "method": "grpo",
        "name": name or out.name,
        "base": base_info(base),
        "init_adapter": {"dir": str(init), "name": init_meta.get("name")} if init_meta else None,
        "data": {
            "path": str(data),
            "sha256": file_sha256(data),
            "manifest": data_manifest or None,
        },
        "data_manifest_path": str(manifest_path(data)),
        "hyperparameters": s.model_dump(),
        "steps": len(step_log),
        "examples": {
            "prompts": len(prompts),
            "dropped_too_long": dropped,
            "completions": len(rewards_seen),
            "seen": len(step_log) * s.prompts_per_step,
        },
        "reward_first_half": _mean([e["reward"] for e in step_log[:half]]),
        "reward_second_half": _mean([e["reward"] for e in step_log[half:]]),
        "groups_with_signal": sum(e["groups_with_signal"] for e in step_log),
        "s_per_step": _mean([e["s"] for e in step_log]),
        "final_loss": step_log[-1]["loss"] if step_log else None,
        "resumed_from_step": resumed_from or None,
        **run_info(torch, device, dtype, t_start),
    }
    meta["wall_s"] = round(meta["wall_s"] + earlier_s, 2)  # the interrupted sessions' too
    (out / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    remove_checkpoint(out)
    return meta


def _step(
    torch: Any,
    model: Any,
    optim: Any,
    trainable: list[Any],
    prompts: list[tuple[list[int], str]],
    next_prompt: Any,
    s: GRPOSettings,
    ends: set[int],
    pad_id: int,
    tok: Any,
    reward: Reward,
    device: Any,
    step: int,
) -> dict[str, Any]:
    """Sample, reward and update once; the step's log entry (with its raw ``rewards``)."""
    shared = not checkpointing(model)
    t0 = time.perf_counter()
    groups: list[tuple[Any, list[list[int]], list[float]]] = []
    all_rewards: list[float] = []
    model.eval()
    with torch.no_grad():
        for j in range(s.prompts_per_step):
            ids, gold = prompts[next_prompt()]
            torch.manual_seed(s.seed * 1_000_003 + step * 101 + j)
            prompt = torch.tensor([ids], device=device)
            gen = sample_group(torch, model, prompt, s, ends, pad_id, shared=shared)
            completions = [cut_at_end(row[len(ids) :].tolist(), ends) for row in gen]
            rewards = [
                float(reward(tok.decode(c, skip_special_tokens=True), gold, c)) for c in completions
            ]
            all_rewards.extend(rewards)
            groups.append((prompt, completions, rewards))
    t_gen = time.perf_counter() - t0

    model.train()
    n_tokens = sum(len(c) for _, comps, _ in groups for c in comps) or 1
    loss_total = kl_total = 0.0
    with_signal = kl_tokens = 0
    for prompt, comps, rewards in groups:
        adv = group_advantages(rewards, scale=s.scale_advantages)
        if not any(adv):
            continue
        with_signal += 1
        width = max(len(c) for c in comps)
        padded = torch.tensor([c + [pad_id] * (width - len(c)) for c in comps], device=device)
        comp_mask = torch.tensor([[1] * len(c) + [0] * (width - len(c)) for c in comps],
                                 device=device)  # fmt: skip
        tok_mask = comp_mask.to(torch.float32)
        logp = group_logps(torch, model, prompt, padded, comp_mask, shared=shared)
        a = torch.tensor(adv, device=device, dtype=torch.float32).unsqueeze(1)
        per_token = -a * torch.exp(logp - logp.detach())
        if s.beta > 0:
            with torch.no_grad(), model.disable_adapter():
                ref = group_logps(torch, model, prompt, padded, comp_mask, shared=shared)
            diff = ref - logp
            kl = torch.exp(diff) - diff - 1.0
            per_token = per_token + s.beta * kl
            kl_total += float((kl.detach() * tok_mask).sum())
            kl_tokens += sum(len(c) for c in comps)
        loss = (per_token * tok_mask).sum() / n_tokens
        loss.backward()
        loss_total += float(loss.detach())
    if with_signal:
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optim.step()
    optim.zero_grad(set_to_none=True)
    dt = time.perf_counter() - t0
    return {
        "step": step + 1,
        "reward": round(_mean(all_rewards) or 0.0, 4),
        "groups_with_signal": with_signal,
        "groups": len(groups),
        "loss": round(loss_total, 6),
        "kl": round(kl_total / kl_tokens, 6) if s.beta > 0 and kl_tokens else None,
        "completion_tokens": round(n_tokens / max(1, len(all_rewards)), 1),
        "gen_s": round(t_gen, 2),
        "train_s": round(dt - t_gen, 2),
        "s": round(dt, 2),
        "rewards": all_rewards,
    }


def _mean(xs: list[float]) -> float | None:
    return round(sum(xs) / len(xs), 4) if xs else None
