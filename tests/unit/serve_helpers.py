"""Test helpers for the proxy: a test-only 3-call strategy and a deliberately failing upstream."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

from ponder.answers import extract_answer
from ponder.protocol.actions import Flow, Generate, Note, Outcome, Task
from ponder.protocol.requests import Completion, GenerationRequest, SamplingParams
from ponder.protocol.strategy import Strategy
from ponder.strategies.registry import _REGISTRY, register_strategy


class PickLongest(Strategy):
    """Test-only: three concurrent calls, then answer with the longest reply."""

    name: ClassVar[str] = "test_pick_longest"
    max_tokens: int = 64

    def flow(self, task: Task) -> Flow:
        req = GenerationRequest(
            messages=({"role": "user", "content": task.question},),
            params=SamplingParams(max_tokens=self.max_tokens, temperature=0.7),
        )
        results = yield Generate.of(req, req, req)
        texts = [r.choices[0].text for r in results if isinstance(r, Completion)]
        if not texts:
            raise results[0].error
        best = max(texts, key=len)
        yield Note("picked", {"candidates": len(texts), "consensus": extract_answer(best)})
        return Outcome(answer=extract_answer(best), text=best)


if PickLongest.name not in _REGISTRY:
    register_strategy(PickLongest)

UPSTREAM_SECRET = "sk-upstream-SECRET-1234567890"


def ok_body(model: str = "m", text: str = "The answer is \\boxed{4}.") -> dict[str, Any]:
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


class _Handler(BaseHTTPRequestHandler):
    mode = "ok"
    hang_s = 30.0
    seen_auth: ClassVar[list[str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        self.seen_auth.append(self.headers.get("authorization", ""))
        mode = self.server.mode  # type: ignore[attr-defined]
        if mode == "500":
            self._json(500, {"error": {"message": "upstream exploded"}})
        elif mode == "401":
            self._json(
                401, {"error": {"message": f"Incorrect API key provided: {UPSTREAM_SECRET}"}}
            )
        elif mode == "hang":
            time.sleep(self.server.hang_s)  # type: ignore[attr-defined]
            self._json(200, ok_body())
        elif mode == "close":
            self.close_connection = True
            self.connection.shutdown(2)
        elif mode == "slow_ok":
            time.sleep(1.5)
            self._json(200, ok_body(body.get("model", "m")))
        else:
            self._json(200, ok_body(body.get("model", "m")))

    def _json(self, status: int, data: dict[str, Any]) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)


@contextmanager
def fake_upstream(mode: str, hang_s: float = 30.0) -> Iterator[str]:
    """A real HTTP server on loopback that answers every POST according to ``mode``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.mode = mode  # type: ignore[attr-defined]
    server.hang_s = hang_s  # type: ignore[attr-defined]
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
