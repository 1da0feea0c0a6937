"""``ponder setup``: build llama-server and assemble the default model now (both cached)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("setup", help="build llama-server and fetch the default model (cached)")
    p.add_argument("--gguf", help="check this GGUF file instead of the default model")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ponder.orchestrator.backends.local import prepare_local

    binary, model = prepare_local(args.gguf, quiet=args.quiet)
    print(f"llama-server: {binary}")
    print(f"model: {model}")
    return 0
