"""``ponder ssa train | grpo | export``: the steps that need torch, transformers and peft.

They live in the train venv (scripts/setup-train-venv.sh). Run from an environment without them,
these commands re-run themselves with the train venv's Python when it exists
(``$PONDER_TRAIN_VENV``, default ``.venv-train`` beside the package's checkout), and otherwise
fail saying how to make it (``ensure_train_env``). ``ponder.cli.ssa`` registers them beside
``data`` and ``rft``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

from ponder.cli.common import settings_from
from ponder.errors import MissingExtraError

TRAIN_MODULES = ("torch", "transformers", "peft")
REEXEC_ENV = "PONDER_TRAIN_REEXEC"
DEFAULT_NAME = "ssa-0.5b-rft"
GRPO_NAME = "ssa-0.5b-grpo"


def register_train_steps(steps: Any) -> None:
    """Add ``train``, ``grpo`` and ``export`` to ``ponder ssa``'s subcommands."""
    _register_train(steps)
    _register_grpo(steps)
    _register_export(steps)


def _register_train(steps: Any) -> None:
    t = steps.add_parser("train", help="LoRA SFT on rft targets (train venv)")
    t.add_argument("--data", required=True, help="the JSONL `ponder ssa rft` wrote")
    t.add_argument("--base", help="HF model dir (default: the prepared default model)")
    t.add_argument("--name", help=f"adapter name (default {DEFAULT_NAME} for the default base)")
    t.add_argument("--out", help="output dir (default ~/.cache/ponder/ssa/<name>)")
    _add_lora_args(t, dropout=0.05)
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--epochs", type=float, default=1.0)
    t.add_argument("--batch-size", type=int, default=1)
    t.add_argument("--grad-accum", type=int, default=4)
    t.add_argument("--max-length", type=int, default=3072, help="longer pairs are dropped")
    t.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    _add_run_args(t)
    t.set_defaults(handler=handle_train)


def _register_grpo(steps: Any) -> None:
    g = steps.add_parser("grpo", help="GRPO on answer correctness (train venv)")
    g.add_argument("--data", required=True, help="the JSONL `ponder ssa data` wrote")
    g.add_argument("--base", help="HF model dir (default: the prepared default model)")
    g.add_argument(
        "--init-adapter", help="start from this `ponder ssa train` output (RFT, then RL)"
    )
    g.add_argument("--name", help="adapter name (default ssa-0.5b-grpo for the default base)")
    g.add_argument("--out", help="output dir (default ~/.cache/ponder/ssa/<name>)")
    g.add_argument("--steps", type=int, default=20, help="optimizer steps")
    g.add_argument("--prompts-per-step", type=int, default=2)
    g.add_argument("--group", type=int, default=4, help="completions sampled per prompt")
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--max-new-tokens", type=int, default=128)
    g.add_argument("--max-prompt-length", type=int, default=3072, help="longer are dropped")
    g.add_argument("--beta", type=float, default=0.0, help="KL penalty to the base (default 0)")
    g.add_argument("--no-scale-advantages", action="store_true", help="Dr. GRPO: r - mean only")
    g.add_argument("--lr", type=float, default=2e-5)
    g.add_argument("--save-every", type=int, default=10, help="checkpoint every N steps (0: never)")
    g.add_argument(
        "--resume", action="store_true", help="continue the interrupted run in --out, if any"
    )
    _add_lora_args(g, dropout=0.0)
    _add_run_args(g)
    g.set_defaults(handler=handle_grpo)


def _add_lora_args(p: Any, *, dropout: float) -> None:
    """The LoRA options of ``train`` and ``grpo`` (a fresh adapter's; ``--init-adapter`` keeps
    its own)."""
    p.add_argument("--r", type=int, default=16, help="LoRA rank")
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument("--dropout", type=float, default=dropout)
    p.add_argument("--target-modules", help="comma-separated (default q,k,v,o,gate,up,down proj)")
    p.add_argument(
        "--last-layers", type=int, help="LoRA on the top N layers only (much faster on CPU)"
    )


def _add_run_args(p: Any) -> None:
    """Seed, device and output options shared by ``train`` and ``grpo``."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, help="CPU threads (default: every core)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16"), default="auto")
    p.add_argument("--no-gradient-checkpointing", action="store_true")
    p.add_argument("--force", action="store_true", help="replace an adapter already in --out")
    p.add_argument("--quiet", action="store_true")


def _register_export(steps: Any) -> None:
    e = steps.add_parser("export", help="merge, convert to GGUF, register by name (train venv)")
    e.add_argument("--adapter", required=True, help="a `ponder ssa train` output dir")
    e.add_argument("--name", help="model name to register (default: the adapter's name)")
    e.add_argument("--outtype", choices=("q8_0", "f16", "bf16", "f32"), default="q8_0")
    e.add_argument("--models-dir", help="where the GGUF goes (default ~/.cache/ponder/models)")
    e.add_argument("--keep-merged", action="store_true", help="keep ADAPTER/merged")
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(handler=handle_export)


def train_venv_python() -> Path:
    """The train venv's Python (``$PONDER_TRAIN_VENV``, else ``.venv-train`` in the checkout)."""
    env = os.environ.get("PONDER_TRAIN_VENV")
    venv = Path(env) if env else Path(__file__).resolve().parents[2] / ".venv-train"
    return venv / "bin" / "python"


def ensure_train_env(argv: list[str]) -> None:
    """Return if torch, transformers and peft import here; else re-run ``ponder`` with the
    train venv's Python (replacing this process), or raise ``MissingExtraError`` saying how to
    make that venv."""
    missing = [m for m in TRAIN_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        return
    python = train_venv_python()
    if python.is_file() and os.environ.get(REEXEC_ENV) != "1":
        print(
            f"ponder: {', '.join(missing)} not here; running in {python.parent.parent}",
            file=sys.stderr,
        )
        os.environ[REEXEC_ENV] = "1"
        os.execv(str(python), [str(python), "-m", "ponder", *argv])
    raise MissingExtraError(
        f"`ponder ssa {argv[1] if len(argv) > 1 else 'train'}` needs {', '.join(missing)} (the "
        "train extra), kept out of the main install: run scripts/setup-train-venv.sh (it makes "
        f"{python.parent.parent}; this command then re-runs itself there), or pip install "
        "'ponder[train]'"
    )


def _argv(args: argparse.Namespace) -> list[str]:
    """The ``ponder`` arguments of this command (what a re-run in the train venv repeats)."""
    return list(getattr(args, "argv", None) or sys.argv[1:])


def handle_train(args: argparse.Namespace) -> int:
    ensure_train_env(_argv(args))
    from ponder.learning.ssa.train import TrainSettings, train_ssa

    base, name, out = _base_and_out(args, DEFAULT_NAME)
    settings = settings_from(TrainSettings, args, **_lora_and_run_settings(args))
    meta = train_ssa(
        args.data, base, out, settings, name=name, progress=not args.quiet, force=args.force
    )
    ex = meta["examples"]
    print(
        f"trained {meta['name']} in {meta['wall_s']:.0f} s on {meta['device']}: {meta['steps']} "
        f"steps ({meta['s_per_step']} s/step, {ex['seen']} pairs seen), {ex['used']} pairs "
        f"({ex['by_source']}; "
        f"{ex['dropped_too_long']} dropped as longer than {settings.max_length} tokens), "
        f"loss {meta['first_loss']:.4f} -> {meta['final_loss']:.4f}; adapter in {out}"
    )
    print(f"next: ponder ssa export --adapter {out}  (its curve: ponder ssa plot --run {out})")
    return 0


def _lora_and_run_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings of the options ``_add_lora_args`` and ``_add_run_args`` declare that are not
    the option's value as given (``settings_from`` reads the others by name)."""
    return {
        "target_modules": _targets(args.target_modules),
        "gradient_checkpointing": not args.no_gradient_checkpointing,
    }


def _targets(arg: str | None) -> tuple[str, ...]:
    from ponder.learning.ssa.train import DEFAULT_TARGETS

    if not arg:
        return DEFAULT_TARGETS
    return tuple(t.strip() for t in arg.split(",") if t.strip())


def _base_and_out(args: argparse.Namespace, default_name: str) -> tuple[Path, str, Path]:
    from ponder.backends.local.cache import cache_dir
    from ponder.backends.vllm_model import prepare_hf_model

    if args.base:
        base = Path(args.base).expanduser()
        name = args.name or f"ssa-{base.name}"
    else:
        base = prepare_hf_model(None, quiet=args.quiet)  # verified, converted once
        name = args.name or default_name
    out = Path(args.out).expanduser() if args.out else cache_dir() / "ssa" / name
    return base, name, out


def handle_grpo(args: argparse.Namespace) -> int:
    ensure_train_env(_argv(args))
    from ponder.learning.ssa.grpo import GRPOSettings, grpo_ssa

    base, name, out = _base_and_out(args, GRPO_NAME)
    settings = settings_from(
        GRPOSettings,
        args,
        scale_advantages=not args.no_scale_advantages,
        **_lora_and_run_settings(args),
    )
    meta = grpo_ssa(
        args.data,
        base,
        out,
        settings,
        init_adapter=args.init_adapter,
        name=name,
        progress=not args.quiet,
        force=args.force,
        resume=args.resume,
        save_every=args.save_every,
    )
    ex = meta["examples"]
    resumed = f" (resumed at step {meta['resumed_from_step']})" if meta["resumed_from_step"] else ""
    print(
        f"GRPO {meta['name']}{resumed} in {meta['wall_s']:.0f} s on {meta['device']}: "
        f"{meta['steps']} steps ({meta['s_per_step']} s/step), {ex['completions']} completions of "
        f"{ex['seen']} prompts ({ex['dropped_too_long']} dropped as too long), mean reward "
        f"{meta['reward_first_half']} (first half) -> {meta['reward_second_half']} (second), "
        f"{meta['groups_with_signal']} groups with signal; adapter in {out}"
    )
    print(f"next: ponder ssa export --adapter {out}  (its curve: ponder ssa plot --run {out})")
    return 0


def handle_export(args: argparse.Namespace) -> int:
    ensure_train_env(_argv(args))
    from ponder.learning.ssa.export import export_ssa

    rec = export_ssa(
        args.adapter,
        name=args.name,
        outtype=args.outtype,
        models_dir=args.models_dir,
        keep_merged=args.keep_merged,
        quiet=args.quiet,
    )
    print(f"exported {rec['name']}: {rec['file']} (sha256 {rec['sha256']})")
    print(f"use it: roles: {{aggregator: {{kind: local, model: {rec['name']}}}}}")
    return 0
