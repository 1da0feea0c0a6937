"""``ponder prepare-vllm``: convert a GGUF (default: the default model) to a cached HF directory
that the in-process vLLM backend loads. Any HF model directory needs no preparation."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "prepare-vllm", help="convert a GGUF to a cached HF directory for the vLLM backend"
    )
    p.add_argument("gguf", nargs="?", help="GGUF file (default: the default model)")
    p.add_argument("--out", help="target directory (default: ~/.cache/ponder/hf/<name>)")
    p.add_argument(
        "--force", action="store_true", help="convert again even if a verified copy exists"
    )
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from ponder.backends.vllm_model import prepare_hf_model

    path = prepare_hf_model(args.gguf, out=args.out, quiet=args.quiet, force=args.force)
    print(path)
    return 0
