"""``ponder run``: answer one question with a chain and print reasoning, answer and usage."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from ponder.api import arun, load_config
from ponder.config import LocalBackendConfig, OpenAIBackendConfig, VLLMBackendConfig
from ponder.errors import InputError
from ponder.strategies.registry import build_strategy

SHORT_REASONING_CHARS = 1500


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="answer a question with a strategy chain")
    p.add_argument("question", nargs="?", help="the question (default: read stdin)")
    p.add_argument("-c", "--config", help="chain config file (.yaml/.yml/.json)")
    p.add_argument("--strategy", help="strategy name, overriding the config's (e.g. cot)")
    p.add_argument("--max-tokens", type=int, help="max completion tokens per call (cot)")
    p.add_argument("--budget", type=int, help="hard token budget for the whole run")
    p.add_argument(
        "--base-url", help="use this OpenAI-compatible endpoint instead of the local model"
    )
    p.add_argument("--model", help="model name at --base-url, or model path for --backend vllm")
    p.add_argument("--api-key", help="API key for --base-url (default: $OPENAI_API_KEY)")
    p.add_argument("--gguf", help="serve this GGUF file with the embedded llama-server")
    p.add_argument(
        "--runtime",
        choices=("auto", "prebuilt", "native"),
        help="llama.cpp runtime of the embedded model: the prebuilt wheel, the native build "
        "(`ponder setup --native`), or auto (default: native only once measured faster)",
    )
    p.add_argument(
        "--backend",
        choices=("vllm",),
        help="vllm: run in-process vLLM on --model (HF dir or GGUF; default model if omitted)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--trace", help="write the run's trace as JSONL to this file")
    p.add_argument("--full", action="store_true", help="print the full reasoning, not a short form")
    p.set_defaults(handler=handle)


def _question(args: argparse.Namespace) -> str:
    q = args.question
    if q is None or q == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("no question given: pass it as an argument or on stdin")
        q = sys.stdin.read()
    if not q.strip():
        raise InputError("the question is empty")
    return q.strip()


def _config(args: argparse.Namespace) -> Any:
    cfg = load_config(args.config)
    update: dict[str, Any] = {}
    remote = args.base_url or (args.model and not args.gguf)
    if args.runtime and (remote or getattr(args, "backend", None) == "vllm"):
        raise InputError(
            "--runtime applies to the embedded local model only, not to --base-url, "
            "--model or --backend vllm"
        )
    if getattr(args, "backend", None) == "vllm":
        if args.base_url or args.gguf:
            raise InputError("--backend vllm takes --model PATH, not --base-url or --gguf")
        update["backend"] = VLLMBackendConfig(model=args.model)
    elif remote:
        if args.api_key:
            import os

            os.environ["PONDER_CLI_API_KEY"] = args.api_key
        update["backend"] = OpenAIBackendConfig(
            base_url=args.base_url,
            model=args.model or "default",
            api_key_env="PONDER_CLI_API_KEY" if args.api_key else "OPENAI_API_KEY",
        )
    elif args.gguf or args.runtime:
        base = cfg.backend if isinstance(cfg.backend, LocalBackendConfig) else LocalBackendConfig()
        local: dict[str, Any] = {}
        if args.gguf:
            local["model_path"] = args.gguf
        if args.runtime:
            local["runtime"] = args.runtime
        update["backend"] = base.model_copy(update=local)
    strategy = cfg.strategy
    if args.strategy:
        strategy = build_strategy({"name": args.strategy}, field="--strategy")
    if args.max_tokens is not None:
        if "max_tokens" not in type(strategy).model_fields:
            raise InputError(f"--max-tokens does not apply to strategy {strategy.name!r}")
        strategy = build_strategy(
            {"name": strategy.name, **strategy.model_dump(), "max_tokens": args.max_tokens},
            field="--max-tokens",
        )
    update["strategy"] = strategy
    if args.budget is not None:
        update["budget"] = cfg.budget.model_copy(update={"total_tokens": args.budget})
    return cfg.model_copy(update=update)


def _short(text: str, full: bool) -> str:
    if full or len(text) <= SHORT_REASONING_CHARS:
        return text
    head, tail = text[: SHORT_REASONING_CHARS // 3], text[-2 * SHORT_REASONING_CHARS // 3 :]
    omitted = len(text) - len(head) - len(tail)
    return f"{head}\n  [... {omitted} characters omitted; --full shows all ...]\n{tail}"


def handle(args: argparse.Namespace) -> int:
    question = _question(args)
    cfg = _config(args)
    result = asyncio.run(arun(question, config=cfg, trace=args.trace))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(_short(result.text.strip(), args.full))
    print()
    marker = (
        "  (budget-limited: the token budget cut this run short)" if result.budget_limited else ""
    )
    if result.abstained:
        bar = result.outcome.data.get("abstain_below")
        p = result.outcome.confidence
        print(f"Answer: (abstained: confidence {p:.2f} is under abstain_below {bar}){marker}")
    else:
        print(f"Answer: {result.answer if result.answer is not None else '(none found)'}{marker}")
    if result.p_correct is not None:
        print(f"Confidence: P(correct) = {result.p_correct:.2f} (DRR judge, calibrated)")
    print(f"Usage: {result.usage.summary_line()}")
    served = result.backends.get("default", {})
    if served.get("runtime"):
        print(f"Runtime: {served['runtime']} llama.cpp ({served.get('runtime_version', '?')})")
    if args.trace:
        print(f"Trace: {args.trace} (run {result.run_id})")
    return 0
