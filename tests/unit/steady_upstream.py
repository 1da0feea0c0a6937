"""A deterministic OpenAI-compatible upstream on loopback, for the scale tests and benchmark.

Every reply is a function of the request alone (never of the order requests arrive in), so a run
spread over many workers gets exactly the answers a plain run gets. A question's trace for a seed
is a fixed run of words ending in ``\\boxed{N}``; a request whose final assistant message
(``continue_final_message``, the prefill way of continuing) is a prefix of that trace gets its
next ``max_tokens`` words (finish ``length``) or the rest (``stop``); any other continuation (a
probe's answer cue) gets ``N}``. Tokens are words; ``logprobs`` are given per word with two
alternatives. ``n`` > 1 answers seeds ``seed, seed+1, ...``. ``GET /v1/models`` lists ``model``.
``latency_s`` is slept per request (the benchmark's fixed latency). Each request's question is
logged in ``seen``, and ``peak`` is the most requests it answered at once. Run it in this
process (``with SteadyUpstream(...) as up: up.base_url``) or as its own process:
``python -m tests.unit.steady_upstream --latency 0.2`` prints its base URL.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = ("so", "we", "add", "the", "two", "parts", "then", "carry", "one", "and", "check", "it")


def _h(*parts: Any) -> int:
    data = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def trace_words(question: str, seed: int | None) -> list[str]:
    """The full trace for ``question`` at ``seed``, as tokens (words with their space)."""
    h = _h(question, seed)
    n = 12 + h % 40
    words = [WORDS[(h >> (i % 48)) % len(WORDS)] for i in range(n)]
    return [w + " " for w in words] + [f"\\boxed{{{h % 7}}}"]


@dataclass
class SteadyUpstream:
    model: str = "steady-1"
    latency_s: float = 0.0
    port: int = 0
    seen: list[str] = field(default_factory=list)
    in_flight: int = 0
    peak: int = 0
    """The most requests it was answering at once."""
    _srv: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> SteadyUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> SteadyUpstream:
        up = self

        class Handler(_Handler):
            upstream = up

        self._srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._srv.daemon_threads = True
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()

    @property
    def base_url(self) -> str:
        assert self._srv is not None
        return f"http://127.0.0.1:{self._srv.server_address[1]}/v1"


def _user(messages: list[dict[str, Any]]) -> str:
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    return users[0] if users else ""


def answer(body: dict[str, Any], seed: int | None) -> tuple[list[str], str]:
    """The tokens of one choice for ``body`` at ``seed`` and its finish reason."""
    messages = body.get("messages") or []
    limit = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
    question = _user(messages)
    if body.get("temperature") in (0, 0.0):
        seed = None
    prefix = ""
    if messages and messages[-1].get("role") == "assistant" and body.get("continue_final_message"):
        prefix = str(messages[-1].get("content") or "")
    if len([m for m in messages if m.get("role") == "user"]) > 1:  # a follow-up (critique)
        return (["yes"] if _h(messages) % 3 else ["no"]), "stop"
    full = trace_words(question, seed)
    text = "".join(full)
    if prefix and not text.startswith(prefix):  # a probe's answer cue
        return [f"{_h(question, prefix) % 7}}}"], "stop"
    done, i = "", 0
    while i < len(full) and len(done) < len(prefix):
        done += full[i]
        i += 1
    rest = full[i:]
    if len(rest) > limit:
        return rest[:limit], "length"
    return rest, "stop"


class _Handler(BaseHTTPRequestHandler):
    upstream: SteadyUpstream
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": self.upstream.model}]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        up = self.upstream
        with up._lock:
            up.in_flight += 1
            up.peak = max(up.peak, up.in_flight)
        try:
            if up.latency_s:
                time.sleep(up.latency_s)
        finally:
            with up._lock:
                up.in_flight -= 1
        if not self.path.endswith("/chat/completions"):
            self._json(404, {"error": {"message": "not found"}})
            return
        messages = body.get("messages") or []
        with up._lock:
            up.seen.append(_user(messages))
        n = int(body.get("n") or 1)
        seed = body.get("seed")
        choices, completion = [], 0
        for i in range(n):
            toks, finish = answer(body, None if seed is None else int(seed) + i)
            completion += len(toks)
            choice: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": "".join(toks)},
                "finish_reason": finish,
            }
            if body.get("logprobs"):
                choice["logprobs"] = {"content": [_lp(t, j) for j, t in enumerate(toks)]}
            choices.append(choice)
        prompt = sum(len(str(m.get("content") or "").split()) + 4 for m in messages)
        self._json(
            200,
            {
                "id": f"cmpl-{_h(body) % 10**9}",
                "object": "chat.completion",
                "created": 0,
                "model": up.model,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                },
            },
        )

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _lp(token: str, j: int) -> dict[str, Any]:
    lp = -((_h(token, j) % 100) / 50.0)
    alts = [{"token": token, "logprob": lp}, {"token": "alt", "logprob": lp - 1.0}]
    return {"token": token, "logprob": lp, "top_logprobs": alts}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model", default="steady-1")
    args = ap.parse_args()
    up = SteadyUpstream(model=args.model, latency_s=args.latency, port=args.port).start()
    print(up.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        up.stop()


if __name__ == "__main__":
    main()
