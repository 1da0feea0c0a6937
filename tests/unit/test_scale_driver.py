"""The driver's ``Remote`` hook, without Ray: results from elsewhere are written by this process
once each (a duplicate is dropped), an id that never comes back is reported failed ("lost"), and
the same resume applies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

from ponder.evaluation.driver import Bar, Failed, Output, Write, drive
from ponder.orchestrator.usage import Usage


class Scripted:
    """A remote that answers each pending id (twice for ``dup``) except ``lose``."""

    def __init__(self, dup: str = "", lose: str = "") -> None:
        self.dup, self.lose = dup, lose
        self.asked: list[str] = []

    def in_flight(self) -> int:
        return 0

    async def results(
        self, pending: Mapping[str, str]
    ) -> AsyncIterator[tuple[str, Write | Failed]]:
        for key in pending:
            self.asked.append(key)
            if key == self.lose:
                continue
            line = Write(json.dumps({"id": key}), Usage(completion_tokens=5, prompt_tokens=1))
            yield key, line
            if key == self.dup:
                yield key, line


async def test_remote_results_are_written_once_and_lost_ones_reported(tmp_path: Path) -> None:
    out = Output(tmp_path / "out.jsonl")
    remote = Scripted(dup="b", lose="c")
    stats = await drive(["a", "b", "c", "d"], out, remote, id_of=str, bar=Bar("t", enabled=False))
    ids = [json.loads(x)["id"] for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert ids == ["a", "b", "d"] and stats.written == 3
    assert stats.completion_tokens == 15  # usage summed once per written item
    assert stats.failed == [("c", "lost: no result came back for it")]
    again = Scripted()
    stats = await drive(["a", "b", "c", "d"], out, again, id_of=str, bar=Bar("t", enabled=False))
    assert again.asked == ["c"] and stats.done_before == 3 and stats.written == 1
