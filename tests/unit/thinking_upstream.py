"""A loopback reasoning upstream that continues prefilled assistant messages, for budget tests.

No model: choice ``i`` of a fresh request thinks ``think[i % len(think)]`` words, then answers
``ANSWER``; one token per whitespace word (``/tokenize`` counts the same way), cut at exactly
``max_tokens``. The thinking comes as ``reasoning_content`` (``dialect="reasoning_content"``:
DeepSeek, vLLM's parser, llama.cpp) or inline (``"think"``: ``<think> … </think>`` in the content,
each marker one token). A request whose last message is an assistant message with
``continue_final_message`` (vLLM, llama.cpp prefill) continues it, never echoing the prefix:
after a closed thinking it writes the rest of the answer; after an opened one (``<think>``, the
thinking format's prefill) it thinks, closes and answers inline, reporting no reasoning tokens
(no parser sees a continuation). A request with vLLM's
``thinking_token_budget`` thinks at most that many words (the native knob). Every call is logged
(``Call``: prompt, completion and thinking tokens, whether it continued a prefix, the body), so a
test can add up exactly what the upstream generated.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "So 2 + 2 = 4 and the answer is \\boxed{4}."
CLOSE = "</think>"


def words(text: str) -> int:
    return len(text.split())


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    return sum(4 + words(str(m.get("content") or "")) for m in messages) + 3


@dataclass
class Call:
    body: dict[str, Any]
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int
    continued: bool
    thinking: list[str] = field(default_factory=list)


@dataclass
class ThinkingUpstream:
    think: list[int]
    dialect: str = "reasoning_content"
    log: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.dialect in ("reasoning_content", "think")
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> ThinkingUpstream:
        up = self

        class Handler(_Handler):
            upstream = up

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def totals(self) -> tuple[int, int, int]:
        """Prompt, completion and thinking tokens of every call so far."""
        with self._lock:
            return (
                sum(c.prompt_tokens for c in self.log),
                sum(c.completion_tokens for c in self.log),
                sum(c.reasoning_tokens for c in self.log),
            )

    def choice(self, i: int, body: dict[str, Any]) -> tuple[dict[str, Any], str, int, int, str]:
        """``(message, finish, tokens, thinking tokens, thinking)`` of choice ``i``."""
        cap = int(body.get("max_completion_tokens") or body.get("max_tokens") or 4096)
        answer = ANSWER.split()
        messages = body["messages"]
        last = messages[-1]
        if last.get("role") == "assistant" and body.get("continue_final_message"):
            prefix = str(last.get("content") or "")
            if "<think>" in prefix and CLOSE not in prefix:  # a prefill opened the thinking
                n = self.think[i % len(self.think)]
                out = ([f"hmm{j}" for j in range(n)] + [CLOSE] + answer)[:cap]
                finish = "stop" if len(out) == n + 1 + len(answer) else "length"
                return {"role": "assistant", "content": " ".join(out)}, finish, len(out), 0, ""
            done = prefix.split(CLOSE, 1)[1].split() if CLOSE in prefix else []
            new = answer[len(done) :][:cap]
            finish = "stop" if len(done) + len(new) == len(answer) else "length"
            return {"role": "assistant", "content": " " + " ".join(new)}, finish, len(new), 0, ""
        n = self.think[i % len(self.think)]
        native = body.get("thinking_token_budget")
        if native is not None:
            n = min(n, int(native))
        inline = self.dialect == "think"
        thought = (["<think>"] if inline else []) + [f"hmm{j}" for j in range(n)]
        thought += [CLOSE] if inline else []
        out = (thought + answer)[:cap]
        spent = min(len(thought), len(out))
        thinking = " ".join(w for w in out[:spent] if w not in ("<think>", CLOSE))
        rest = " ".join(out[spent:])
        finish = "stop" if len(out) == len(thought) + len(answer) else "length"
        if inline:
            message = {"role": "assistant", "content": " ".join(out)}
        else:
            message = {"role": "assistant", "content": rest, "reasoning_content": thinking}
        return message, finish, len(out), spent, thinking


class _Handler(BaseHTTPRequestHandler):
    upstream: ThinkingUpstream
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.loads(raw or b"{}")
        up = self.upstream
        if self.path.endswith("/tokenize"):
            text = str(body.get("content", body.get("prompt", "")))
            self._json({"tokens": list(range(words(text)))})
            return
        n = int(body.get("n") or 1)
        made = [up.choice(i, body) for i in range(n)]
        prompt = prompt_tokens(body["messages"])
        done = sum(m[2] for m in made)
        thinking = sum(m[3] for m in made)
        last = body["messages"][-1]
        continued = last.get("role") == "assistant" and bool(body.get("continue_final_message"))
        with up._lock:
            up.log.append(Call(body, prompt, done, thinking, continued, [m[4] for m in made]))
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": done,
            "total_tokens": prompt + done,
        }
        if thinking:
            usage["completion_tokens_details"] = {"reasoning_tokens": thinking}
        self._json(
            {
                "id": "chatcmpl-think",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "m"),
                "choices": [
                    {"index": i, "message": m[0], "finish_reason": m[1]} for i, m in enumerate(made)
                ],
                "usage": usage,
            }
        )

    def _json(self, data: dict[str, Any]) -> None:
        out = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
