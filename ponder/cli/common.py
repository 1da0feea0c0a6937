"""What several subcommands share: settings read from the options named like them, and the report
of a resumable run (``ponder collect``, ``ponder ssa rft``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


def settings_from(model: type[M], args: argparse.Namespace, **given: Any) -> M:
    """``model`` built from the options named like its fields, and ``given`` (which wins: for
    an option that is not the field's value as it stands, such as ``--no-X`` for ``X``). A field
    no option names keeps its default; an option no field names is not passed."""
    named = {name: getattr(args, name) for name in model.model_fields if hasattr(args, name)}
    return model(**{**named, **given})


class RunSummary(Protocol):
    """What a resumable run returns (``CollectSummary``, ``RFTSummary``)."""

    failed: list[tuple[str, str]]

    def line(self) -> str: ...


def report(summary: RunSummary, *more: str) -> int:
    """Print the run's summary line, then ``more``, then its first five failures; the exit
    status: 1 if an item failed (a rerun redoes it), else 0."""
    print(summary.line())
    for line in more:
        print(line)
    for key, why in summary.failed[:5]:
        print(f"  failed {key}: {why}")
    return 1 if summary.failed else 0


def say(line: str) -> None:
    """A progress or notice line for the user, on stderr (stdout stays the command's output)."""
    print(line, file=sys.stderr)
