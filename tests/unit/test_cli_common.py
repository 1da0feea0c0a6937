"""The CLI's shared pieces: settings read from the options named like them, and a run's report.

Each command's settings are checked against the field-by-field construction it used before
``settings_from``, with every option given a value other than its default."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

import pytest
from pydantic import BaseModel

import ponder.learning  # noqa: F401  registers ``collect``
from ponder.cli import build_parser
from ponder.cli.common import report, settings_from
from ponder.cli.ssa_train import _targets


class _Settings(BaseModel):
    a: int = 1
    b: str = "x"
    c: bool = False


def test_settings_from_reads_the_options_named_like_fields_and_given_wins() -> None:
    args = argparse.Namespace(a=5, b="y", other="ignored", no_c=True)
    s = settings_from(_Settings, args, c=not args.no_c, b="z")
    assert s == _Settings(a=5, b="z", c=False)
    assert s.model_fields_set == {"a", "b", "c"}
    assert settings_from(_Settings, argparse.Namespace()) == _Settings()


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


def test_collect_settings_are_the_options() -> None:
    from ponder.learning.collect.strategy import BehaviourCollector

    args = _args(
        "collect", "--dataset", "d.jsonl", "-k", "3", "--max-tokens", "99", "--probe-every",
        "16", "--temperature", "0.3", "--seed", "7", "--greedy", "--no-self-critique",
    )  # fmt: skip
    old = BehaviourCollector(
        k=args.k,
        max_tokens=args.max_tokens,
        probe_every=args.probe_every,
        temperature=args.temperature,
        seed=args.seed,
        greedy=args.greedy,
        self_critique=not args.no_self_critique,
    )
    new = settings_from(BehaviourCollector, args, self_critique=not args.no_self_critique)
    assert new == old and new.model_fields_set == old.model_fields_set


def test_rft_settings_are_the_options() -> None:
    from ponder.learning.ssa.rft_run import RFTSettings

    args = _args(
        "ssa", "rft", "--data", "d", "--out", "o", "-n", "3", "--temperature", "0.5",
        "--top-p", "0.9", "--max-tokens", "77", "--seed", "4", "--cap", "1",
        "--fallback", "none", "--role", "judge",
    )  # fmt: skip
    old = RFTSettings(
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        max_tokens=args.max_tokens,
        seed=args.seed,
        cap=args.cap,
        fallback=args.fallback,
        role=args.role,
    )
    new = settings_from(RFTSettings, args)
    assert new == old and new.model_fields_set == old.model_fields_set


_LORA_AND_RUN = (
    "--r", "8", "--alpha", "4", "--dropout", "0.2", "--target-modules", "q_proj, v_proj",
    "--last-layers", "2", "--seed", "3", "--device", "cpu", "--threads", "2",
    "--dtype", "float32", "--no-gradient-checkpointing",
)  # fmt: skip


def _old_lora_and_run(args: argparse.Namespace) -> dict[str, object]:
    return {
        "r": args.r,
        "alpha": args.alpha,
        "dropout": args.dropout,
        "target_modules": _targets(args.target_modules),
        "last_layers": args.last_layers,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "dtype": args.dtype,
        "gradient_checkpointing": not args.no_gradient_checkpointing,
    }


def test_train_settings_are_the_options() -> None:
    from ponder.cli.ssa_train import _lora_and_run_settings
    from ponder.learning.ssa.train import TrainSettings

    args = _args(
        "ssa", "train", "--data", "d", "--lr", "0.1", "--epochs", "2", "--batch-size", "3",
        "--grad-accum", "5", "--max-length", "64", "--max-steps", "9", *_LORA_AND_RUN,
    )  # fmt: skip
    old = TrainSettings(
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        max_steps=args.max_steps,
        **_old_lora_and_run(args),
    )
    new = settings_from(TrainSettings, args, **_lora_and_run_settings(args))
    assert new == old and new.model_fields_set == old.model_fields_set


def test_grpo_settings_are_the_options() -> None:
    from ponder.cli.ssa_train import _lora_and_run_settings
    from ponder.learning.ssa.grpo import GRPOSettings

    args = _args(
        "ssa", "grpo", "--data", "d", "--steps", "3", "--prompts-per-step", "5", "--group", "6",
        "--temperature", "0.4", "--top-p", "0.8", "--max-new-tokens", "50",
        "--max-prompt-length", "300", "--beta", "0.1", "--no-scale-advantages", "--lr", "0.01",
        *_LORA_AND_RUN,
    )  # fmt: skip
    old = GRPOSettings(
        steps=args.steps,
        prompts_per_step=args.prompts_per_step,
        group=args.group,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        max_prompt_length=args.max_prompt_length,
        beta=args.beta,
        scale_advantages=not args.no_scale_advantages,
        lr=args.lr,
        **_old_lora_and_run(args),
    )
    new = settings_from(
        GRPOSettings,
        args,
        scale_advantages=not args.no_scale_advantages,
        **_lora_and_run_settings(args),
    )
    assert new == old and new.model_fields_set == old.model_fields_set


@dataclass
class _Summary:
    failed: list[tuple[str, str]] = field(default_factory=list)

    def line(self) -> str:
        return "did it"


@pytest.mark.parametrize("failed", [0, 7])
def test_report_prints_the_line_more_and_the_first_five_failures(
    failed: int, capsys: pytest.CaptureFixture[str]
) -> None:
    s = _Summary([(f"q{i}", f"why {i}") for i in range(failed)])
    assert report(s, "and more") == (1 if failed else 0)
    out = capsys.readouterr().out.splitlines()
    assert out[:2] == ["did it", "and more"]
    assert out[2:] == [f"  failed q{i}: why {i}" for i in range(min(failed, 5))]
