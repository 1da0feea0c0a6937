"""LoRA fine-tuning of a compact SSA aggregator on rejection-sampling targets (train venv only).

Use ``train_ssa(data, base, out, settings)`` or ``ponder ssa train`` after ``ponder ssa rft``.
It needs torch, transformers and peft (the ``train`` extra, in ``.venv-train``: run
scripts/setup-train-venv.sh); the main install never imports this module.

A plain loop rather than trl's SFT trainer, on purpose: the loss mask must follow the inference
prompt exactly (``ponder.learning.ssa.sft.encode``), and that is a few lines here but a moving
set of dataset-format options there. Per pair: the prompt (chat template over the example's
system + user messages, generation prompt added) carries no loss, the target tokens and the
end-of-turn token do. Pairs longer than ``max_length`` are dropped and counted. Batches of
``batch_size`` (right-padded), ``grad_accum`` of them per optimizer step, AdamW, linear decay
of the learning rate to zero. CPU by default with every core (``torch.set_num_threads``), CUDA
when available (``device="auto"``). Writes into ``out``: the adapter (peft's
``adapter_model.safetensors`` + ``adapter_config.json``), ``train_log.jsonl`` (one line per
optimizer step: loss, learning rate, tokens, seconds) and ``ponder-ssa.json`` (format
``ponder.ssa/1``: base and its source sha256, the data and its manifest, the hyperparameters,
steps, examples, wall time, final loss), which ``ponder ssa export`` reads.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ponder.behaviour.records import file_sha256
from ponder.errors import ConfigError, InputError
from ponder.learning.ssa.rft_run import manifest_path, read_rft_rows
from ponder.learning.ssa.sft import Encoded, encode, end_token_ids, training_pairs

META = "ponder-ssa.json"
META_FORMAT = "ponder.ssa/1"
LOG = "train_log.jsonl"
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainSettings(BaseModel):
    """LoRA and optimisation settings (recorded in ``ponder-ssa.json``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(16, ge=1)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = DEFAULT_TARGETS
    last_layers: int | None = Field(None, ge=1)
    """LoRA on the top N decoder layers only: backpropagation stops there, so a step costs little
    more than a forward pass (the CPU recipe); activation checkpointing is then not used."""
    lr: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    batch_size: int = Field(1, ge=1)
    grad_accum: int = Field(4, ge=1)
    max_length: int = Field(3072, ge=16)
    max_steps: int | None = Field(None, ge=1)
    """Stop after this many optimizer steps (to measure seconds per step, or a smoke run)."""
    seed: int = 0
    gradient_checkpointing: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int | None = Field(None, ge=1)
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    """``auto``: float32 on CPU (bf16 matmuls are slow on most CPUs), bfloat16 on CUDA."""


def base_info(base: Path) -> dict[str, Any]:
    """The base directory and what it was made from (``ponder-converted.json``, if any)."""
    info: dict[str, Any] = {"dir": str(base)}
    try:
        marker = json.loads((base / "ponder-converted.json").read_text())
        info["source"] = marker.get("source")
        info["source_sha256"] = marker.get("source_sha256")
    except (OSError, ValueError):
        info["source_sha256"] = None
    cfg = base / "config.json"
    if cfg.is_file():
        info["config_sha256"] = hashlib.sha256(cfg.read_bytes()).hexdigest()[:16]
    return info


def pick_device(torch: Any, choice: str) -> Any:
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("device", "cuda was asked for but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def torch_dtype(torch: Any, choice: str, device: Any) -> Any:
    """``auto``: float32 on CPU (bf16 matmuls are slow on most CPUs), bfloat16 on CUDA."""
    return {
        "float32": torch.float32,
        "bfloat16": torch.bfloat16,
        "auto": torch.bfloat16 if device.type == "cuda" else torch.float32,
    }[choice]


def lora_model(
    base: Path, s: Any, device: Any, dtype: Any, *, init_adapter: Path | None = None
) -> Any:
    """``base`` with a fresh LoRA adapter (``s``: ``r``, ``alpha``, ``dropout``,
    ``target_modules``, ``last_layers``, ``gradient_checkpointing``), or with the trainable
    adapter in ``init_adapter`` (a ``ponder ssa train`` output) loaded instead."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=dtype)
    model.to(device)
    model.config.use_cache = False
    n_layers = int(model.config.num_hidden_layers)
    top = min(s.last_layers, n_layers) if s.last_layers else None
    if init_adapter is not None:
        cfg = json.loads((init_adapter / "adapter_config.json").read_text())
        top = 1 if cfg.get("layers_to_transform") else None  # top layers only: no checkpointing
    if s.gradient_checkpointing and top is None:
        # renamed activation_checkpointing_enable in transformers 5
        enable = getattr(model, "activation_checkpointing_enable", None)
        (enable or model.gradient_checkpointing_enable)()
        model.enable_input_require_grads()
    if init_adapter is not None:
        return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    return get_peft_model(
        model,
        LoraConfig(
            r=s.r,
            lora_alpha=s.alpha,
            lora_dropout=s.dropout,
            target_modules=list(s.target_modules),
            layers_to_transform=list(range(n_layers - top, n_layers)) if top else None,
            bias="none",
            task_type="CAUSAL_LM",
        ),
    )


def checkpointing(model: Any) -> bool:
    """Whether activation (gradient) checkpointing is on in ``model`` (or the model it wraps)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    for attr in ("is_activation_checkpointing", "is_gradient_checkpointing"):
        if hasattr(type(inner), attr):
            return bool(getattr(inner, attr))
    return False


def target_loss(torch: Any, model: Any, batch: dict[str, Any]) -> Any:
    """The causal-LM loss on the labelled (target) tokens, computing logits only from the first
    labelled position on (``logits_to_keep``): the prompt is most of a pair, and its logits over
    a 150k vocabulary would cost more time and memory than the LoRA layers themselves. Equal to
    the model's own ``labels=`` loss (mean over labelled tokens, shifted by one)."""
    labels = batch["labels"]
    width = labels.shape[1]
    labelled = (labels != -100).any(dim=0).nonzero()
    first = int(labelled[0]) if len(labelled) else width - 1
    keep = width - first + 1  # the position before the first target predicts it
    out = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], logits_to_keep=keep
    )
    logits = out.logits[:, :-1, :].float()
    target = labels[:, width - keep + 1 :]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100
    )


def _collate(torch: Any, items: list[Encoded], pad_id: int, device: Any) -> dict[str, Any]:
    width = max(len(e.input_ids) for e in items)
    ids, labels, mask = [], [], []
    for e in items:
        pad = width - len(e.input_ids)
        ids.append(e.input_ids + [pad_id] * pad)
        labels.append(e.labels + [-100] * pad)
        mask.append([1] * len(e.input_ids) + [0] * pad)
    return {
        "input_ids": torch.tensor(ids, device=device),
        "labels": torch.tensor(labels, device=device),
        "attention_mask": torch.tensor(mask, device=device),
    }


def train_ssa(
    data: str | Path,
    base: str | Path,
    out: str | Path,
    settings: TrainSettings | None = None,
    *,
    name: str | None = None,
    progress: bool = True,
    force: bool = False,
) -> dict[str, Any]:
    """Train a LoRA adapter on ``data`` (an ``ssa rft`` file) over ``base`` into ``out``;
    return the ``ponder-ssa.json`` contents. See the module doc."""
    import torch

    s = settings or TrainSettings()
    data, base, out = Path(data), Path(base).expanduser(), Path(out).expanduser()
    if not (base / "config.json").is_file():
        raise InputError(f"base {base} is not a Hugging Face model directory (no config.json)")
    if (out / META).is_file() and not force:
        raise ConfigError("out", f"{out} already holds a trained adapter (use --force to replace)")
    rows = read_rft_rows(data)
    if not rows:
        raise InputError(f"{data} has no RFT rows (make it with `ponder ssa rft`)")
    t_start = time.perf_counter()
    device, dtype, tok, ends = setup_run(torch, base, s, progress)
    pairs = training_pairs(rows)
    encoded: list[Encoded] = []
    dropped = 0
    for p in pairs:
        e = encode(tok, p, s.max_length, ends)
        if e is None:
            dropped += 1
        else:
            encoded.append(e)
    if not encoded:
        raise InputError(
            f"no trainable pairs: {len(pairs)} targets in {len(rows)} rows, {dropped} longer than "
            f"max_length {s.max_length}"
        )
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else next(iter(ends), 0)

    model = lora_model(base, s, device, dtype)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(trainable, lr=s.lr, weight_decay=0.0)
    micro_per_epoch = math.ceil(len(encoded) / s.batch_size)
    total_micro = math.ceil(micro_per_epoch * s.epochs)
    total_steps = math.ceil(total_micro / s.grad_accum)
    if s.max_steps is not None:
        total_steps = min(total_steps, s.max_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda step: max(0.0, 1.0 - step / max(total_steps, 1))
    )
    rng = random.Random(s.seed)
    micro: list[list[int]] = []
    while len(micro) < total_micro:
        order = list(range(len(encoded)))
        rng.shuffle(order)
        micro.extend(_batches(order, s.batch_size))
    micro = micro[: min(total_micro, total_steps * s.grad_accum)]

    out.mkdir(parents=True, exist_ok=True)
    log_path = out / LOG
    log_path.write_text("")
    bar = step_bar(total_steps, "ssa train", progress)
    model.train()
    losses: list[float] = []
    step_times: list[float] = []
    first_loss = None
    try:
        with log_path.open("a", encoding="utf-8") as log:
            for step in range(total_steps):
                t = time.perf_counter()
                group = micro[step * s.grad_accum : (step + 1) * s.grad_accum]
                step_loss = 0.0
                tokens = target_tokens = 0
                for batch_idx in group:
                    items = [encoded[i] for i in batch_idx]
                    batch = _collate(torch, items, pad_id, device)
                    loss = target_loss(torch, model, batch)
                    (loss / len(group)).backward()
                    step_loss += float(loss.detach()) / len(group)
                    tokens += sum(len(e.input_ids) for e in items)
                    target_tokens += sum(e.target_tokens for e in items)
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                lr = sched.get_last_lr()[0]
                optim.step()
                sched.step()
                optim.zero_grad(set_to_none=True)
                dt = time.perf_counter() - t
                losses.append(step_loss)
                step_times.append(dt)
                first_loss = step_loss if first_loss is None else first_loss
                entry = {
                    "step": step + 1,
                    "loss": round(step_loss, 5),
                    "lr": lr,
                    "tokens": tokens,
                    "target_tokens": target_tokens,
                    "s": round(dt, 3),
                }
                log.write(json.dumps(entry) + "\n")
                log.flush()
                bar.update(1)
                bar.set_postfix(loss=f"{step_loss:.4f}", s_step=f"{dt:.1f}")
    finally:
        bar.close()

    model.save_pretrained(str(out))
    by_source: dict[str, int] = {}
    for e in encoded:
        by_source[e.source] = by_source.get(e.source, 0) + 1
    rft_manifest = manifest_path(data)
    meta = {
        "format": META_FORMAT,
        "name": name or out.name,
        "base": base_info(base),
        "data": {
            "path": str(data),
            "sha256": file_sha256(data),
            "manifest": json.loads(rft_manifest.read_text()) if rft_manifest.is_file() else None,
        },
        "hyperparameters": s.model_dump(),
        "steps": len(losses),
        "examples": {
            "rows": len(rows),
            "pairs": len(pairs),
            "used": len(encoded),
            "seen": sum(len(b) for b in micro[: len(losses) * s.grad_accum]),
            "dropped_too_long": dropped,
            "by_source": by_source,
            "target_tokens": sum(e.target_tokens for e in encoded),
            "tokens": sum(len(e.input_ids) for e in encoded),
        },
        "s_per_step": round(sum(step_times) / len(step_times), 3) if step_times else None,
        "first_loss": first_loss,
        "final_loss": losses[-1] if losses else None,
        **run_info(torch, device, dtype, t_start),
    }
    (out / META).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return meta


def read_meta(adapter: str | Path) -> dict[str, Any]:
    """``ponder-ssa.json`` of a trained adapter directory (``InputError`` if it is not one)."""
    path = Path(adapter).expanduser() / META
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path.parent} is not a `ponder ssa train` output ({exc})") from exc
    if meta.get("format") != META_FORMAT:
        raise InputError(f"{path} has format {meta.get('format')!r}, expected {META_FORMAT!r}")
    return dict(meta)


def setup_run(torch: Any, base: Path, s: Any, progress: bool) -> tuple[Any, Any, Any, set[int]]:
    """What every training run sets up first, from ``s`` (``seed``, ``device``, ``threads``,
    ``dtype``): the seed, the device (and CPU threads), the dtype, the base's tokenizer and its
    end-of-turn token ids (the tokenizer's eos and the generation config's)."""
    from transformers import AutoTokenizer, GenerationConfig

    torch.manual_seed(s.seed)
    device = pick_device(torch, s.device)
    if device.type == "cpu":
        torch.set_num_threads(s.threads or os.cpu_count() or 1)
    dtype = torch_dtype(torch, s.dtype, device)
    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(str(base))
    try:
        gen_eos = GenerationConfig.from_pretrained(str(base)).eos_token_id
    except (OSError, ValueError):
        gen_eos = None
    return device, dtype, tok, end_token_ids(tok, gen_eos)


def run_info(torch: Any, device: Any, dtype: Any, t_start: float) -> dict[str, Any]:
    """The ``ponder-ssa.json`` fields every run records: device, threads, dtype, wall time,
    library versions, creation time."""
    import peft
    import transformers

    return {
        "device": str(device),
        "threads": torch.get_num_threads() if device.type == "cpu" else None,
        "dtype": str(dtype).removeprefix("torch."),
        "wall_s": round(time.perf_counter() - t_start, 2),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def step_bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", disable=not enabled)
