"""Unit-test fixtures: ``rm`` starts real loopback HTTP servers (``tests.unit.loopback``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer

import pytest

from tests.unit.loopback import Handler, Server, start_loopback


@pytest.fixture
def rm() -> Iterator[Callable[[Handler], Server]]:
    """``rm(handler)`` -> a running ``Server``; all are shut down after the test."""
    servers: list[ThreadingHTTPServer] = []
    yield lambda handler: start_loopback(handler, servers)
    for srv in servers:
        srv.shutdown()
        srv.server_close()
