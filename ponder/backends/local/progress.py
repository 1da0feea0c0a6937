"""Progress output for slow one-time set-up work (building, downloading, hashing)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


def say(message: str, *, quiet: bool = False) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


def progress_bar(*, quiet: bool = False, **kwargs: Any) -> tqdm:
    return tqdm(disable=quiet, file=sys.stderr, dynamic_ncols=True, **kwargs)
