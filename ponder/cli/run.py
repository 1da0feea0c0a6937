"""``ponder run``: answer one question with a chain and print reasoning, answer and usage.

The API key for ``--base-url`` comes from ``$OPENAI_API_KEY``, the variable ``--api-key-env``
names, or the file ``--api-key-file`` (``--api-key`` also works but is visible to every user in
``ps``). Exit status: 0 answered, 1 the run failed (one line on stderr; also when the budget
stopped the run before any call), 2 bad input or config (a malformed ``--base-url``, an
unwritable ``--trace``, refused before the call). A trace that still cannot be written after the
run (a full disk) loses nothing: the answer is printed and a warning says so (exit 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from ponder.api import arun, load_config
from ponder.config import LocalBackendConfig, OpenAIBackendConfig, VLLMBackendConfig
from ponder.errors import BudgetExhausted, ConfigError, InputError
from ponder.orchestrator.trace import TraceNotWritten
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
        "--thinking-budget",
        type=int,
        metavar="N",
        help="thinking tokens per call (docs/reasoning.md, 'Bounding thinking'); wins over "
        "--reasoning-effort",
    )
    p.add_argument(
        "--reasoning-effort",
        metavar="EFFORT",
        help="low, medium or high (or a name in the config's thinking.efforts): a thinking "
        "budget per call",
    )
    p.add_argument(
        "--base-url", help="use this OpenAI-compatible endpoint instead of the local model"
    )
    p.add_argument("--model", help="model name at --base-url, or model path for --backend vllm")
    p.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding the API key for --base-url (default: OPENAI_API_KEY)",
    )
    p.add_argument("--api-key-file", metavar="PATH", help="read the API key from this file")
    p.add_argument(
        "--api-key",
        help="API key for --base-url; visible to other users in `ps`: prefer $OPENAI_API_KEY, "
        "--api-key-env or --api-key-file",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop the run after S seconds (each upstream call also times out by then)",
    )
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
        backend: dict[str, Any] = {
            "base_url": args.base_url,
            "model": args.model or "default",
            "api_key_env": _api_key_env(args),
        }
        if args.timeout is not None:
            backend["timeout_s"] = args.timeout
        update["backend"] = OpenAIBackendConfig(**backend)
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
        try:
            strategy = strategy.with_max_tokens(args.max_tokens)
        except ConfigError as exc:
            raise ConfigError("--max-tokens", exc.reason) from None
    update["strategy"] = strategy
    if args.budget is not None:
        update["budget"] = cfg.budget.model_copy(update={"total_tokens": args.budget})
    if args.thinking_budget is not None:
        if args.thinking_budget <= 0:
            raise InputError(f"--thinking-budget must be positive, got {args.thinking_budget}")
        update["thinking_budget"] = args.thinking_budget
    if args.reasoning_effort is not None:
        efforts = cfg.thinking.efforts
        if args.reasoning_effort not in efforts:
            raise ConfigError(
                "--reasoning-effort",
                f"got {args.reasoning_effort!r}; valid choices: {', '.join(efforts)}",
            )
        update["reasoning_effort"] = args.reasoning_effort
    if args.timeout is not None:
        if args.timeout <= 0:
            raise InputError(f"--timeout must be positive, got {args.timeout:g}")
        update["timeout_s"] = args.timeout
    return cfg.model_copy(update=update)


def _api_key_env(args: argparse.Namespace) -> str:
    """The env var the backend reads its key from (a key given by flag or file is put there)."""
    given = [x for x in ("api_key", "api_key_file", "api_key_env") if getattr(args, x, None)]
    if len(given) > 1:
        raise InputError("give at most one of --api-key, --api-key-file and --api-key-env")
    if args.api_key_env:
        return str(args.api_key_env)
    key = args.api_key
    if args.api_key_file:
        try:
            key = Path(args.api_key_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InputError(f"--api-key-file: cannot read {args.api_key_file}: {exc}") from None
        if not key:
            raise InputError(f"--api-key-file: {args.api_key_file} is empty")
    elif key:
        print(
            "ponder: warning: --api-key is visible to other users in `ps`; prefer "
            "$OPENAI_API_KEY, --api-key-env or --api-key-file",
            file=sys.stderr,
        )
    if not key:
        return "OPENAI_API_KEY"
    os.environ["PONDER_CLI_API_KEY"] = key
    return "PONDER_CLI_API_KEY"


def _check_trace_path(path: str) -> None:
    """Refuse (before the run, so no answer is lost) a --trace path that cannot be written: try
    what the writer will do (open an existing file or device for appending; create the file's
    temporary sibling in its directory), as ``os.access`` says yes to root where writes fail."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"--trace: {path} is a directory")
    if p.exists() and not p.is_file():  # a device or a pipe: written in place
        if not p.is_fifo():  # opening a pipe would wait for its reader
            _try_writing(path, lambda: p.open("a").close())
        elif not os.access(p, os.W_OK):
            raise InputError(f"--trace: {path} is not writable")
        return
    if p.exists():
        _try_writing(path, lambda: p.open("a").close())
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--trace: cannot create {path} ({parent} is not a writable directory)")
    if parent == p.parent:  # the writer replaces the file with a temporary sibling
        tmp = p.with_name(p.name + ".tmp")

        def probe() -> None:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            tmp.unlink()

        if not tmp.exists():
            _try_writing(path, probe)


def _try_writing(path: str, attempt: Any) -> None:
    try:
        attempt()
    except OSError as exc:
        raise InputError(f"--trace: cannot write {path}: {exc.strerror or exc}") from None


def _short(text: str, full: bool) -> str:
    if full or len(text) <= SHORT_REASONING_CHARS:
        return text
    head, tail = text[: SHORT_REASONING_CHARS // 3], text[-2 * SHORT_REASONING_CHARS // 3 :]
    omitted = len(text) - len(head) - len(tail)
    return f"{head}\n  [... {omitted} characters omitted; --full shows all ...]\n{tail}"


def handle(args: argparse.Namespace) -> int:
    question = _question(args)
    cfg = _config(args)
    if args.trace:
        _check_trace_path(args.trace)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TraceNotWritten)
        result = asyncio.run(arun(question, config=cfg, trace=args.trace))
    trace_lost = False
    for w in caught:  # the answer is printed all the same
        if issubclass(w.category, TraceNotWritten):
            trace_lost = True
            print(f"ponder: warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if result.budget_limited and result.usage.calls == 0:
        raise BudgetExhausted(
            f"the token budget of {cfg.budget.total_tokens} cannot fit a single call of this "
            "chain; raise --budget or lower --max-tokens"
        )
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
    if args.trace and not trace_lost:
        print(f"Trace: {args.trace} (run {result.run_id})")
    return 0
