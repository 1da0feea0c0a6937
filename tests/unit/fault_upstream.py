"""A fault-injecting OpenAI-compatible upstream on loopback, for chaos tests and benchmarks.

It uses no model: a reply is a run of words ending in ``\\boxed{N}``, and tokens are counted by a
deterministic tokenizer (``fake_tokens``: each non-ASCII character counts 2; each digit, each run
of up to 4 ASCII letters and each other character counts 1), so CJK and digit-dense text cost more
tokens per character than English, as with real BPE vocabularies, yet never more than UTF-8 bytes.

Faults are drawn per request at the rates given (``Faults``); ``hang``, ``drop`` and ``malformed``
happen *after* the reply was generated, so the tokens count as generated but were never delivered.
Every request is logged (``Gen``): the fault, prompt and completion tokens generated, whether it
was delivered, and the ``[req-...]`` tag found in the messages, so a test or the benchmark can add
up what the upstream generated for one client request. ``/tokenize`` (llama.cpp's shape) gives
exact counts when ``tokenize`` is on. Use ``with FaultUpstream(Faults(...)) as up: up.base_url``.

With a ``dialect`` it is a reasoning model: each reply thinks first (CJK, digits and a decoy
``\\boxed{}`` that is not the answer) and gives its thinking the way that dialect does:
``reasoning_content`` (DeepSeek's API, llama.cpp), ``reasoning`` (newer vLLM) or inline
``<think>…</think>`` in the content (``think``), whole or as stream deltas (inline markers cut
across chunks), with ``usage.completion_tokens_details.reasoning_tokens`` (``report_reasoning``).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TAG = re.compile(r"\[req-[0-9a-z-]+\]")
_PIECE = re.compile(r"[A-Za-z]{1,4}|\d|[^\x00-\x7f]|[\s\S]")


def fake_tokens(text: str) -> int:
    """Tokens of ``text`` by this upstream's tokenizer (see the module doc)."""
    return sum(2 if ord(p[0]) > 127 else 1 for p in _PIECE.findall(text))


DIALECTS = ("reasoning_content", "reasoning", "think")
HIDDEN = "hidden"
"""A dialect that thinks but sends no thinking, only its ``reasoning_tokens`` (o-series)."""
THINK_OPEN, THINK_CLOSE = "<think>\n", "\n</think>\n\n"


def thought(words: int, answer: int) -> str:
    """The thinking of a reply: CJK, digits, and a ``\\boxed{}`` that is not its answer."""
    return f"让我想想：{answer} + 10 = {answer + 10}，也许 \\boxed{{{answer + 10}}}？" + " hmm" * (
        words % 5
    )


def chat_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """Chat template cost: 4 tokens per message plus 3 for the assistant header."""
    return sum(4 + fake_tokens(str(m.get("content") or "")) for m in messages) + 3


@dataclass
class Faults:
    """Probabilities per request (drawn in this order); the rest answer normally."""

    http_500: float = 0.0
    http_503: float = 0.0
    hang: float = 0.0
    drop: float = 0.0
    http_429: float = 0.0
    malformed: float = 0.0
    http_401: float = 0.0
    echo_key_400: float = 0.0
    refuse_n: bool = False  # 400 "Only one completion choice is allowed" for n > 1
    retry_after: str | None = None  # sent with 429 and 503
    hang_s: float = 30.0
    latency_s: float = 0.0  # every chat reply waits this long first (a model's fixed latency)
    words: tuple[int, int] = (8, 40)
    seed: int = 0

    def table(self) -> list[tuple[str, float]]:
        return [
            ("500", self.http_500),
            ("503", self.http_503),
            ("hang", self.hang),
            ("drop", self.drop),
            ("429", self.http_429),
            ("malformed", self.malformed),
            ("401", self.http_401),
            ("echo_key_400", self.echo_key_400),
        ]


@dataclass
class Gen:
    """One request the upstream received."""

    tag: str | None
    fault: str
    prompt_tokens: int
    completion_tokens: int
    delivered: bool
    n: int = 1
    stream: bool = False
    stop: tuple[str, ...] = ()
    """The ``stop`` sequences the request asked for (a reply is cut before the first one)."""
    response_format: dict[str, Any] | None = None
    reasoning_tokens: int = 0
    """Of ``completion_tokens``, those spent thinking (with a ``dialect``)."""
    thinking: list[str] = field(default_factory=list)
    """Each choice's thinking, without inline markers (with a ``dialect``)."""
    answers: list[str] = field(default_factory=list)
    """Each choice's answer (the content after the thinking)."""


@dataclass
class Reply:
    """One generated choice: the ``content`` sent (inline thinking included) and, with a
    dialect, its ``thinking`` (as meant, without markers) and ``answer`` (after the thinking)."""

    content: str
    tokens: int
    finish: str
    thinking: str | None = None
    reasoning_tokens: int = 0
    answer: str = ""

    def __post_init__(self) -> None:
        if self.thinking is None:
            self.answer = self.content


@dataclass
class FaultUpstream:
    faults: Faults = field(default_factory=Faults)
    tokenize: bool = True
    log: list[Gen] = field(default_factory=list)
    auth_seen: list[str] = field(default_factory=list)
    dialect: str | None = None
    """``reasoning_content``, ``reasoning`` or ``think`` (inline): a reasoning model (see the
    module doc); ``hidden``: one that sends only its ``reasoning_tokens``; ``None``: replies with
    no thinking."""
    report_reasoning: bool = True
    """With a dialect: send ``usage.completion_tokens_details.reasoning_tokens``."""
    seen: list[dict[str, Any]] = field(default_factory=list)
    """Every chat request body received."""

    def __post_init__(self) -> None:
        assert self.dialect in (None, HIDDEN, *DIALECTS), self.dialect
        self._lock = threading.Lock()
        self._rng = random.Random(self.faults.seed)
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def __enter__(self) -> FaultUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> FaultUpstream:
        up = self

        class Handler(_Handler):
            upstream = up

        ThreadingHTTPServer.request_queue_size = 256
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    # -- accounting ---------------------------------------------------------------------------

    def generated(self, tag: str | None = None) -> int:
        """Prompt + completion tokens generated (delivered or not), for one tag or all."""
        with self._lock:
            return sum(
                g.prompt_tokens + g.completion_tokens
                for g in self.log
                if tag is None or g.tag == tag
            )

    def delivered(self, tag: str | None = None) -> int:
        with self._lock:
            return sum(
                g.prompt_tokens + g.completion_tokens
                for g in self.log
                if g.delivered and (tag is None or g.tag == tag)
            )

    def reasoning(self, tag: str | None = None) -> int:
        """Thinking tokens generated and delivered, for one tag or all."""
        with self._lock:
            return sum(
                g.reasoning_tokens
                for g in self.log
                if g.delivered and (tag is None or g.tag == tag)
            )

    def record(self, gen: Gen) -> None:
        with self._lock:
            self.log.append(gen)

    def draw(self) -> str:
        with self._lock:
            x = self._rng.random()
            words = self._rng.randint(*self.faults.words)
            answer = self._rng.randint(1, 9)
        acc = 0.0
        for name, p in self.faults.table():
            acc += p
            if x < acc:
                return f"{name}:{words}:{answer}"
        return f"ok:{words}:{answer}"


def _cut(reply: Reply, stops: tuple[str, ...]) -> Reply:
    """A reply cut before the first of ``stops`` in its answer (``finish_reason: stop``), as a
    server does; the stop sequence itself is not returned."""
    text = reply.answer
    at = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    if at < 0:
        return reply
    spent = reply.tokens - fake_tokens(text) + fake_tokens(text[:at])
    content = reply.content[: len(reply.content) - len(text)] + text[:at]
    return Reply(content, spent, "stop", reply.thinking, reply.reasoning_tokens, text[:at])


def _prefix_of(text: str, tokens: int) -> str:
    """The longest start of ``text`` that costs at most ``tokens`` (``fake_tokens``)."""
    out = ""
    for p in _PIECE.findall(text):
        if fake_tokens(out + p) > tokens:
            break
        out += p
    return out


class _Handler(BaseHTTPRequestHandler):
    upstream: FaultUpstream
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("content-length", 0))
        raw = self.rfile.read(length)
        up = self.upstream
        up.auth_seen.append(self.headers.get("authorization", ""))
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "bad json"}})
            return
        if not self.path.endswith("/tokenize"):
            with up._lock:
                up.seen.append(body)
        if self.path.endswith("/tokenize"):
            if not up.tokenize:
                self._json(404, {"error": {"message": "not found"}})
                return
            text = str(body.get("content", body.get("prompt", "")))
            self._json(200, {"tokens": list(range(fake_tokens(text)))})
            return
        self._chat(body)

    def _chat(self, body: dict[str, Any]) -> None:
        up, f = self.upstream, self.upstream.faults
        if f.latency_s:
            time.sleep(f.latency_s)
        messages = body.get("messages") or [{"content": body.get("prompt", "")}]
        text_in = " ".join(str(m.get("content") or "") for m in messages)
        m = TAG.search(text_in)
        tag = m.group(0) if m else None
        n = int(body.get("n") or 1)
        stream = bool(body.get("stream"))
        prompt = chat_prompt_tokens(messages) if body.get("messages") else fake_tokens(text_in)
        fault, words, answer = up.draw().split(":")
        stop = body.get("stop") or ()
        stops = (stop,) if isinstance(stop, str) else tuple(str(x) for x in stop)
        gen = Gen(tag, fault, 0, 0, False, n, stream, stops, body.get("response_format"))
        if fault in ("500", "503", "429", "401", "echo_key_400"):
            up.record(gen)
            self._refuse(fault)
            return
        if f.refuse_n and n > 1:
            gen.fault = "refuse_n"
            up.record(gen)
            self._json(400, {"error": {"message": "Only one completion choice is allowed"}})
            return
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or 4096)
        choices = [
            _cut(self._reply(int(words) + i, int(answer), max_tokens), stops) for i in range(n)
        ]
        gen.prompt_tokens = prompt  # a native n call reads its prompt once
        gen.completion_tokens = sum(c.tokens for c in choices)
        gen.reasoning_tokens = sum(c.reasoning_tokens for c in choices)
        gen.thinking = [c.thinking or "" for c in choices]
        gen.answers = [c.answer for c in choices]
        if fault == "hang":
            up.record(gen)
            time.sleep(f.hang_s)
            self._json(200, self._body(body, choices, prompt))
            return
        if fault == "drop":
            up.record(gen)
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if fault == "malformed":
            up.record(gen)
            kind = "html" if int(answer) % 2 else "json"
            data = b"<html>oops</html>" if kind == "html" else b'{"choices": [{"index": 0,'
            self._send(200, data, "text/html" if kind == "html" else "application/json")
            return
        gen.delivered = True
        up.record(gen)
        if stream:
            self._stream(body, choices, prompt)
        else:
            self._json(200, self._body(body, choices, prompt))

    def _reply(self, words: int, answer: int, max_tokens: int) -> Reply:
        dialect = self.upstream.dialect
        thinking: list[str] = []
        if dialect is not None:  # think first, within the same max_tokens
            thinking = [thought(words, answer)]
            if dialect == "think":
                thinking = [THINK_OPEN, *thinking, THINK_CLOSE]
        parts: list[str] = []
        tokens = 0
        target = [*(["step"] * words), "The", " answer", " is", f" \\boxed{{{answer}}}."]
        cut = False
        for w in target:
            piece = w if w.startswith(" ") or not parts else " " + w
            cost = fake_tokens(piece)
            if tokens + cost > max_tokens:  # cut at exactly max_tokens, as a real server does
                parts.append("." * (max_tokens - tokens))
                tokens, cut = max_tokens, True
                break
            parts.append(piece)
            tokens += cost
        if not thinking:
            return Reply("".join(parts), tokens, "length" if cut else "stop")
        think = "".join(thinking)
        spent = fake_tokens(think)
        if spent >= max_tokens:  # cut mid-thought: no answer
            think = _prefix_of(think, max_tokens)
            spent = fake_tokens(think)
            return self._reasoned(think, "", spent, spent, "length")
        answer_text = "".join(parts)
        if spent + tokens > max_tokens:
            answer_text = _prefix_of(answer_text, max_tokens - spent)
            cut = True
        total = spent + fake_tokens(answer_text)
        return self._reasoned(think, answer_text, total, spent, "length" if cut else "stop")

    def _reasoned(self, think: str, answer: str, tokens: int, spent: int, finish: str) -> Reply:
        if self.upstream.dialect == "think":
            bare = think.removeprefix(THINK_OPEN).removesuffix(THINK_CLOSE).strip()
            return Reply(think + answer, tokens, finish, bare, spent, answer)
        return Reply(answer, tokens, finish, think, spent, answer)

    def _message(self, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        dialect = self.upstream.dialect
        if dialect in ("reasoning_content", "reasoning"):
            message[dialect] = reply.thinking
        return message

    def _usage(self, choices: list[Reply], prompt: int) -> dict[str, Any]:
        done = sum(c.tokens for c in choices)
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": done,
            "total_tokens": prompt + done,
        }
        if self.upstream.dialect is not None and self.upstream.report_reasoning:
            thinking = sum(c.reasoning_tokens for c in choices)
            usage["completion_tokens_details"] = {"reasoning_tokens": thinking}
        return usage

    def _body(self, body: dict[str, Any], choices: list[Reply], prompt: int) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-fault-{id(choices)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "m"),
            "choices": [
                {"index": i, "message": self._message(c), "finish_reason": c.finish}
                for i, c in enumerate(choices)
            ],
            "usage": self._usage(choices, prompt),
        }

    def _refuse(self, fault: str) -> None:
        f = self.upstream.faults
        headers = {"retry-after": f.retry_after} if f.retry_after else {}
        if fault == "401":
            self._json(401, {"error": {"message": "Incorrect API key provided: sk-up****7890"}})
        elif fault == "echo_key_400":
            auth = self.headers.get("authorization", "")
            self._json(
                400,
                {"error": {"message": f"bad request from {auth}", "param": None}},
                {"x-echo-auth": auth},
            )
        elif fault == "429":
            self._json(429, {"error": {"message": "slow down"}}, headers)
        else:
            status = int(fault)
            self._json(status, {"error": {"message": f"upstream {status}"}}, headers)

    def _stream(self, body: dict[str, Any], choices: list[Reply], prompt: int) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {"id": "chatcmpl-fault-s", "object": "chat.completion.chunk", "created": 0}
        base["model"] = body.get("model", "m")
        dialect = self.upstream.dialect
        for i, c in enumerate(choices):
            if dialect in ("reasoning_content", "reasoning") and c.thinking:
                for piece in re.findall(r"\S+\s*", c.thinking):
                    delta = {"index": i, "delta": {dialect: piece}, "finish_reason": None}
                    self._event({**base, "choices": [delta]})
            if dialect == "think":  # pieces of 3 characters: the markers are cut across chunks
                pieces = [c.content[j : j + 3] for j in range(0, len(c.content), 3)] or [""]
            else:
                pieces = re.findall(r"\S+\s*", c.content) or [""]
            for piece in pieces:
                delta = {"index": i, "delta": {"content": piece}, "finish_reason": None}
                self._event({**base, "choices": [delta]})
            self._event({**base, "choices": [{"index": i, "delta": {}, "finish_reason": c.finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            self._event({**base, "choices": [], "usage": self._usage(choices, prompt)})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()

    def _event(self, data: dict[str, Any]) -> None:
        self.wfile.write(b"data: " + json.dumps(data).encode() + b"\n\n")

    def _json(
        self, status: int, data: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _send(
        self, status: int, data: bytes, ctype: str, headers: dict[str, str] | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", ctype)
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client went away (a timeout on its side)
