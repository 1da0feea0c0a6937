"""The ``ponder`` command. Each subcommand lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ponder.errors import ConfigError, InputError, PonderError, PromptError

SUBCOMMANDS = (
    "ponder.cli.run",
    "ponder.cli.setup",
    "ponder.cli.eval",
    "ponder.cli.serve",
    "ponder.cli.prepare_vllm",
    "ponder.cli.collect",
    "ponder.cli.corpus",
    "ponder.cli.aggregate",
    "ponder.cli.drr",
    "ponder.cli.ssa",
    "ponder.cli.merge",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="ponder", description="Inference-time reasoning orchestration."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in SUBCOMMANDS:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import ponder.learning  # noqa: F401  registers the offline strategies (``collect``) by name

    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        return int(args.handler(args) or 0)
    except (ConfigError, InputError, PromptError) as exc:
        print(f"ponder: error: {exc}", file=sys.stderr)
        return 2
    except PonderError as exc:
        print(f"ponder: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ponder: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
