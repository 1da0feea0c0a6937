"""Chaos benchmark: N requests from C concurrent official ``openai`` clients through ``ponder
serve`` against a fault-injecting OpenAI-compatible upstream (tests/unit/fault_upstream.py).

The proxy runs as its own process (``python -m ponder serve``, from ``--ponder-root``, so an older
checkout can be measured the same way); the upstream runs in this process on loopback. Requests
rotate over a ``cot`` chain, a ``sample`` k=4 chain and pass-through, streamed and not. Each
carries a ``[req-i]`` tag that the upstream logs with every token it generated (delivered or not),
so the table can say which runs spent more than their budget and whether the usage the proxy
reported equals what the upstream served::

    PYTHONPATH=. python benchmarks/chaos.py --requests 200 --concurrent 32
    PYTHONPATH=. python benchmarks/chaos.py --ponder-root /tmp/old-checkout   # "before"

Rows: answered; clear errors by status/code (a JSON error, with a code when the proxy made
it); unclear (a 500, a 5xx without a code, or not JSON); lost or hung (the client's timeout, or
the connection to the proxy broke); duplicated (one completion id answered twice); over budget
(upstream tokens for a chain request > its budget); usage != upstream (an answered request whose
usage differs from what the upstream delivered for it); leaked keys (the upstream key, or a
masked form, in anything a client got).

The proxy's upstream URL carries credentials (``http://chaos:<password>@host/v1?api-key=<secret>``)
and it writes traces and an INFO log; after the load, a table of cases (``CASES``: image and audio
parts, ``logit_bias``, ``response_format``, ``stop``, duplicate JSON keys) probes the "no silent
change" rules. More rows: leaked URL credentials (the password or the query secret in anything a
client got, any trace file or the proxy's log); internal address (the upstream's ``host:port`` in
anything a client got); per case, whether the proxy answered as expected, and silent drops (a 200
that dropped what the case asked: a stop sequence left in the text, a ``response_format`` the
upstream never saw, a duplicated key that reached the upstream).

Lost work (issue 29): a ``drr_feedback`` chain (``fb``: the default DM, a re-examination every
time) joins the load; "lost answers" counts its requests answered with an error although a round
had finished (read from the run's trace). Errors that are not JSON are counted on their own row.
After the cases, the proxy's readiness is read (``HEAD /health``, ``/ready``), then a burst of
chain and pass-through requests (plain and streamed) is left hanging on the upstream and the proxy
is sent SIGTERM: each must be answered a JSON 503 ``shutting_down`` (or end its stream with that
error event), and ``/ready`` must say 503 ``draining`` meanwhile. Two start-up cases: a DRR chain
on an upstream without assistant-prefix continuation must be refused at start (exit 2, one line
naming the chain and the capability), and ``ponder run --trace /proc/version`` must be refused
before the call. ``--trace-max-mb`` caps the proxy's ``trace_dir`` (rotation; the row shows its
size).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.unit.fault_upstream import Faults, FaultUpstream  # noqa: E402

KEY = "sk-chaos-UPSTREAM-KEY-0123456789"
URL_PASSWORD = "chaos-URL-PASSWORD-4242"
URL_SECRET = "chaos-QUERY-SECRET-5353"
BUDGETS = {"cot": 1200, "sc4": 4000}
FEEDBACK = {  # re-examines every answer (P(correct) < 1), so a later round can fail under faults
    "name": "drr_feedback",
    "dm": "default",
    "allow_other_reasoner": True,
    "threshold": 1.0,
    "rounds": 1,
    "max_tokens": 128,
}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


@dataclass
class Case:
    """One "no silent change" probe: a request and what the proxy must answer.

    ``code``: the 400 error code expected (nothing reaches the upstream); ``None``: a 200 (or,
    under faults, any clear error) whose answer ``honoured`` checks."""

    name: str
    model: str
    body: dict | None = None  # extra fields of a JSON body
    raw: bytes | None = None  # a body sent as these bytes
    content: list | None = None  # the user message's content parts
    code: str | None = None


CASES = [
    Case(
        "image part, cot",
        "ponder:cot",
        content=[{"type": "text", "text": "What?"}, IMAGE],
        code="unsupported_content",
    ),
    Case("audio part, sc4", "ponder:sc4", content=[AUDIO], code="unsupported_content"),
    Case(
        "logit_bias, cot",
        "ponder:cot",
        body={"logit_bias": {"50256": -100}},
        code="unsupported_parameter",
    ),
    Case(
        "response_format, sc4",
        "ponder:sc4",
        body={"response_format": {"type": "json_object"}},
        code="unsupported_parameter",
    ),
    Case(
        "duplicate n, pass-through",
        "m",
        code="duplicate_key",
        raw=b'{"model": "m", "n": 1000, "n": 1, "messages": [{"role": "user", "content": "TAG"}]}',
    ),
    Case(
        "duplicate max_tokens, cot",
        "ponder:cot",
        code="duplicate_key",
        raw=b'{"model": "ponder:cot", "max_tokens": 9000, "max_tokens": 9, '
        b'"messages": [{"role": "user", "content": "TAG"}]}',
    ),
    Case("stop, cot", "ponder:cot", body={"stop": ["."]}),
    Case("stop, sc4", "ponder:sc4", body={"stop": ["."]}),
    Case("response_format, cot", "ponder:cot", body={"response_format": {"type": "json_object"}}),
]
INNER = {"name": "cot", "temperature": 0.7, "max_tokens": 300}


@dataclass
class Tally:
    answered: int = 0
    clear: Counter[str] = field(default_factory=Counter)
    unclear: Counter[str] = field(default_factory=Counter)
    lost: int = 0
    ids: Counter[str] = field(default_factory=Counter)
    usage_mismatch: int = 0
    leaked: int = 0
    latencies: list[float] = field(default_factory=list)
    usage: dict[int, int] = field(default_factory=dict)
    seen_text: list[str] = field(default_factory=list)
    cases: Counter[str] = field(default_factory=Counter)  # "name: outcome"
    silent_drops: int = 0
    not_json: int = 0
    fb_errors: list[str] = field(default_factory=list)  # trace ids of fb requests that failed
    lifecycle: dict[str, object] = field(default_factory=dict)  # readiness, shutdown, start-up


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_proxy(
    root: Path,
    upstream_url: str,
    timeout_s: float,
    trace_dir: Path,
    trace_max_mb: float | None = None,
) -> tuple[subprocess.Popen, str, Path]:
    netloc = upstream_url.removeprefix("http://")
    cfg = {
        "upstream": {
            "kind": "openai",
            "base_url": f"http://chaos:{URL_PASSWORD}@{netloc}?api-key={URL_SECRET}",
            "model": "m",
            "api_key_env": "CHAOS_UPSTREAM_KEY",
            "timeout_s": timeout_s,
            "continuation": "prefill",  # the fb chain continues partial answers
        },
        "chains": {
            "cot": {
                "strategy": {"name": "cot", "max_tokens": 300},
                "budget": {"total_tokens": BUDGETS["cot"]},
            },
            "sc4": {
                "strategy": {"name": "sample", "k": 4, "inner": INNER},
                "budget": {"total_tokens": BUDGETS["sc4"]},
            },
            "fb": {"strategy": FEEDBACK},
        },
        "retry": {"max_attempts": 3, "initial_backoff_s": 0.2, "max_backoff_s": 1.0},
        "limits": {"max_concurrent_runs": 256},
        "shutdown_grace_s": 1,
        "trace_dir": str(trace_dir),
        **({"trace_max_mb": trace_max_mb} if trace_max_mb is not None else {}),
    }
    path = Path(tempfile.mkdtemp()) / "chaos.json"
    path.write_text(json.dumps(cfg))
    port = free_port()
    env = {**os.environ, "CHAOS_UPSTREAM_KEY": KEY, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ponder", "serve", "-c", str(path), "--port", str(port)],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(path.with_suffix(".log"), "w"),  # noqa: SIM115
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url, path.with_suffix(".log")
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the proxy did not start; see {path.with_suffix('.log')}")


def classify_error(t: Tally, exc: BaseException) -> None:
    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        t.lost += 1
        return
    if isinstance(exc, openai.APIStatusError):
        if "json" not in exc.response.headers.get("content-type", ""):
            t.not_json += 1
        body = exc.body if isinstance(exc.body, dict) else None
        err = body.get("error", body) if body else None
        code = err.get("code") if isinstance(err, dict) else None
        t.seen_text.append(json.dumps(exc.body, default=str) + str(dict(exc.response.headers)))
        if exc.status_code == 500 or err is None or (exc.status_code >= 500 and not code):
            t.unclear[f"{exc.status_code}/{code}"] += 1
        else:
            t.clear[f"{exc.status_code}/{code}"] += 1
        return
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        body = exc.body if isinstance(exc.body, dict) else {}
        code = body.get("code") if isinstance(body, dict) else None
        t.seen_text.append(json.dumps(exc.body, default=str))
        (t.clear if code else t.unclear)[f"stream/{code}"] += 1
        return
    t.unclear[type(exc).__name__] += 1


async def one(client: openai.AsyncOpenAI, i: int, t: Tally, kind: str, stream: bool) -> None:
    model = {"cot": "ponder:cot", "sc4": "ponder:sc4", "fb": "ponder:fb", "pass": "m"}[kind]
    n = 2 if kind in BUDGETS and i % 4 == 0 else 1  # a request's n shares the chain's budget
    messages = [{"role": "user", "content": f"[req-{i}] What is {i % 7} + {i % 5}?"}]
    t0 = time.perf_counter()
    trace_id = None
    try:
        if stream:
            s = await client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
                n=n,
            )
            trace_id = s.response.headers.get("x-ponder-trace-id")
            text, cid, usage, finished = "", None, None, False
            async for c in s:
                cid = c.id
                if c.choices:
                    text += c.choices[0].delta.content or ""
                    finished = finished or c.choices[0].finish_reason is not None
                if c.usage:
                    usage = c.usage.total_tokens
            if not finished:
                t.unclear["stream/truncated"] += 1
                return
        else:
            r = await client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]
                n=n,
            )
            text, cid = r.choices[0].message.content or "", r.id
            usage = r.usage.total_tokens if r.usage else None
        t.answered += 1
        t.seen_text.append(text)
        if cid and not (kind == "pass" and cid.startswith("chatcmpl-fault")):
            t.ids[cid] += 1
        if usage is not None:
            t.usage[i] = usage
    except Exception as exc:  # noqa: BLE001
        classify_error(t, exc)
        response = getattr(exc, "response", None)
        if response is not None:
            trace_id = trace_id or response.headers.get("x-ponder-trace-id")
        if kind == "fb" and trace_id:
            t.fb_errors.append(trace_id)
    finally:
        t.latencies.append(time.perf_counter() - t0)


async def drive(url: str, n: int, c: int, timeout: float, t: Tally) -> list[tuple[int, str]]:
    sem = asyncio.Semaphore(c)
    clients = [
        openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0, timeout=timeout)
        for _ in range(c)
    ]
    kinds = ["cot", "sc4", "pass", "fb"]
    plan = [(i, kinds[i % 4], bool((i // 4) % 2)) for i in range(n)]

    async def go(i: int, kind: str, stream: bool) -> None:
        async with sem:
            await one(clients[i % c], i, t, kind, stream)

    await asyncio.gather(*(go(*p) for p in plan))
    for cl in clients:
        await cl.close()
    return [(i, kind) for i, kind, _ in plan]


async def probe(url: str, up: FaultUpstream, t: Tally, repeats: int, timeout: float) -> None:
    """Each of ``CASES`` ``repeats`` times: tally how the proxy answered and any silent drop."""
    async with httpx.AsyncClient(base_url=f"{url}/v1", timeout=timeout) as http:

        async def one(case: Case, i: int) -> None:
            tag = f"[req-case-{CASES.index(case)}-{i}]"
            if case.raw is not None:
                r = await http.post(
                    "/chat/completions",
                    content=case.raw.replace(b"TAG", tag.encode()),
                    headers={"content-type": "application/json"},
                )
            else:
                content = [{"type": "text", "text": tag}, *(case.content or [])]
                body = {
                    "model": case.model,
                    "messages": [{"role": "user", "content": content if case.content else tag}],
                    **(case.body or {}),
                }
                r = await http.post("/chat/completions", json=body)
            t.seen_text.append(r.text + str(dict(r.headers)))
            reached = [g for g in up.log if g.tag == tag]
            try:
                data = r.json()
            except ValueError:
                data = {}
            err = data.get("error") if isinstance(data, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
            if case.code is not None:
                ok = r.status_code == 400 and code == case.code and not reached
                if r.status_code == 200 or reached:
                    t.silent_drops += 1
                t.cases[f"{case.name}: {'as expected' if ok else f'{r.status_code}/{code}'}"] += 1
                return
            if r.status_code != 200:
                clear = isinstance(err, dict) and code and r.status_code != 500
                t.cases[f"{case.name}: {'clear error' if clear else 'unclear'}"] += 1
                return
            text = data["choices"][0]["message"]["content"] or ""
            stop = (case.body or {}).get("stop")
            fmt = (case.body or {}).get("response_format")
            dropped = (stop and any(s in text for s in stop)) or (
                fmt and not any(g.response_format == fmt for g in reached)
            )
            if stop and any(g.stop != tuple(stop) for g in reached):
                dropped = True
            t.silent_drops += bool(dropped)
            t.cases[f"{case.name}: {'silent drop' if dropped else 'honoured'}"] += 1

        await asyncio.gather(*(one(c, i) for c in CASES for i in range(repeats)))


def lost_answers(t: Tally, trace_dir: Path) -> int:
    """``fb`` requests answered with an error although a round had finished with an answer."""
    lost = 0
    for run_id in t.fb_errors:
        path = trace_dir / f"{run_id}.jsonl"
        if not path.exists():
            continue
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        finished = [
            e
            for e in events
            if e.get("type") == "decision"
            and e.get("event") == "drr_feedback"
            and e.get("answer") is not None
        ]
        lost += bool(finished)
    return lost


def readiness(url: str, t: Tally) -> None:
    """``HEAD /health`` and ``GET /ready`` of a proxy that is up."""
    t.lifecycle["HEAD /health (want 200)"] = httpx.head(f"{url}/health", timeout=5).status_code
    t.lifecycle["GET /ready when up (want 200)"] = httpx.get(f"{url}/ready", timeout=5).status_code


SHUTDOWN_BURST = [
    ("cot", "ponder:cot", {}),
    ("cot stream", "ponder:cot", {"stream": True}),
    ("pass-through", "m", {}),
    ("pass-through stream", "m", {"stream": True}),
    (
        "pass-through stream + tools",
        "m",
        {
            "stream": True,
            "tools": [
                {"type": "function", "function": {"name": "add", "parameters": {"type": "object"}}}
            ],
        },
    ),
]


def shutdown_burst(proc: subprocess.Popen, url: str, up: FaultUpstream, t: Tally) -> None:
    """Requests of each kind left hanging on the upstream, then SIGTERM: each must be answered
    a JSON 503 ``shutting_down`` (a stream: that error as its last event); ``/ready`` must say
    503 while the proxy drains."""
    up.faults = Faults(hang=1.0, hang_s=30.0)
    answers: dict[str, str] = {}

    def ask(name: str, model: str, extra: dict, tag: str) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": f"{tag} hi"}], **extra}
        try:
            with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as r:
                kind = r.headers.get("content-type", "")
                raw = r.read()
            lines = [x for x in raw.decode(errors="replace").splitlines() if x.startswith("data:")]
            if "event-stream" in kind:
                last = lines[-1][len("data:") :].strip() if lines else ""
                code = (
                    json.loads(last).get("error", {}).get("code") if last.startswith("{") else last
                )
                answers[name] = "ok" if code == "shutting_down" else f"stream ends {code}"
            elif "json" in kind:
                code = json.loads(raw or b"{}").get("error", {}).get("code")
                ok = r.status_code == 503 and code == "shutting_down"
                answers[name] = "ok" if ok else f"{r.status_code}/{code}"
            else:
                answers[name] = f"{r.status_code} {kind or 'no content-type'}"
        except httpx.HTTPError as exc:
            answers[name] = type(exc).__name__

    threads = [
        threading.Thread(target=ask, args=(*case, f"[req-down-{i}]"))
        for i, case in enumerate(SHUTDOWN_BURST)
    ]
    for th in threads:
        th.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(any(g.tag == f"[req-down-{i}]" for g in up.log) for i in range(len(threads))):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    ready: list[int] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            ready.append(httpx.get(f"{url}/ready", timeout=1).status_code)
        except httpx.HTTPError:
            break
        if ready[-1] == 503:
            break
        time.sleep(0.05)
    for th in threads:
        th.join(30)
    proc.wait(30)
    t.lifecycle["GET /ready while draining (want 503)"] = ready[-1] if ready else "closed"
    for name, _, _ in SHUTDOWN_BURST:
        t.lifecycle[f"shutdown: {name} (want ok)"] = answers.get(name, "no answer")


def startup_cases(root: Path, up: FaultUpstream, t: Tally) -> None:
    """A DRR chain on an upstream without continuation (refused at start), and ``ponder run
    --trace`` to a path nothing can be written to (refused before the call)."""
    cfg = {
        "upstream": {"kind": "openai", "base_url": up.base_url, "model": "m"},
        "chains": {"fb": {"strategy": FEEDBACK}},
    }
    path = Path(tempfile.mkdtemp()) / "refuse.json"
    path.write_text(json.dumps(cfg))
    env = {**os.environ, "PYTHONPATH": str(root), "OPENAI_API_KEY": KEY}
    cmd = [sys.executable, "-m", "ponder", "serve", "-c", str(path), "--port", str(free_port())]
    try:
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=60)
        last = (done.stderr.strip().splitlines() or [""])[-1]
        named = "chains.fb" in last and "continuation" in last
        outcome = "refused" if done.returncode == 2 and named else f"exit {done.returncode}"
    except subprocess.TimeoutExpired:
        outcome = "started"
    t.lifecycle["DRR chain, no continuation: start (want refused)"] = outcome
    if not Path("/proc/version").is_file():
        return
    tag = "[req-run-trace]"
    cmd = [
        sys.executable,
        "-m",
        "ponder",
        "run",
        f"{tag} What is 2 + 2?",
        "--base-url",
        up.base_url,
        "--model",
        "m",
        "--trace",
        "/proc/version",
    ]
    done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=120)
    called = any(g.tag == tag for g in up.log)
    refused = done.returncode == 2 and "/proc/version" in done.stderr and not called
    answered = done.returncode == 0 and "Answer:" in done.stdout
    outcome = "refused" if refused else "answered" if answered else f"exit {done.returncode}"
    t.lifecycle["ponder run --trace /proc/version (want refused)"] = outcome


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrent", type=int, default=32)
    ap.add_argument("--ponder-root", default=str(ROOT), help="checkout whose proxy to run")
    ap.add_argument("--upstream-timeout", type=float, default=2.0)
    ap.add_argument("--client-timeout", type=float, default=120.0)
    ap.add_argument("--hang-s", type=float, default=30.0)
    ap.add_argument("--echo-key", type=float, default=0.0, help="rate of 400s echoing the key")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--words", type=int, nargs=2, default=(20, 400), help="reply length range")
    ap.add_argument("--case-repeats", type=int, default=3, help="times each of CASES is sent")
    ap.add_argument("--trace-max-mb", type=float, help="cap the proxy's trace_dir (rotation)")
    args = ap.parse_args()
    faults = Faults(
        http_500=0.15,
        http_503=0.15,
        hang=0.10,
        drop=0.05,
        http_429=0.05,
        malformed=0.03,
        echo_key_400=args.echo_key,
        hang_s=args.hang_s,
        words=tuple(args.words),
        seed=args.seed,
    )
    t = Tally()
    trace_dir = Path(tempfile.mkdtemp(prefix="chaos-traces-"))
    with FaultUpstream(faults, tokenize=False) as up:
        root = Path(args.ponder_root)
        proc, url, log_path = start_proxy(
            root, up.base_url, args.upstream_timeout, trace_dir, args.trace_max_mb
        )
        try:
            t0 = time.perf_counter()
            plan = asyncio.run(drive(url, args.requests, args.concurrent, args.client_timeout, t))
            asyncio.run(probe(url, up, t, args.case_repeats, args.client_timeout))
            readiness(url, t)
            startup_cases(root, up, t)
            shutdown_burst(proc, url, up, t)
            wall = time.perf_counter() - t0
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        internal = up.url.removeprefix("http://")
        over = sum(
            1 for i, kind in plan if kind in BUDGETS and up.generated(f"[req-{i}]") > BUDGETS[kind]
        )
        mismatch = sum(1 for i, u in t.usage.items() if u != up.delivered(f"[req-{i}]"))
    masked = KEY[:4] + "****"
    leaked = sum(1 for s in t.seen_text if KEY in s or masked in s or KEY[-6:] in s)
    trace_files = sorted(trace_dir.glob("*.jsonl"))
    trace_mb = sum(p.stat().st_size for p in trace_files) / 1e6
    lost = lost_answers(t, trace_dir)
    written = [p.read_text(errors="replace") for p in trace_files]
    written.append(log_path.read_text(errors="replace") if log_path.exists() else "")
    url_leaks = {
        where: sum(1 for s in texts if URL_PASSWORD in s or URL_SECRET in s or KEY in s)
        for where, texts in (("responses", t.seen_text), ("traces + log", written))
    }
    addressed = sum(1 for s in t.seen_text if internal in s)
    dup = sum(n - 1 for n in t.ids.values() if n > 1)
    lat = sorted(t.latencies)
    p95 = lat[int(0.95 * (len(lat) - 1))] if lat else 0.0
    print(
        f"chaos: {args.requests} requests x {args.concurrent} clients, proxy from "
        f"{args.ponder_root}, {wall:.1f}s wall"
    )
    rows = [
        ("answered", t.answered),
        ("clear error (status/code)", sum(t.clear.values())),
        *[(f"  {k}", v) for k, v in sorted(t.clear.items())],
        ("unclear (500, no code, not JSON)", sum(t.unclear.values())),
        *[(f"  {k}", v) for k, v in sorted(t.unclear.items())],
        ("lost or hung", t.lost),
        ("duplicated", dup),
        ("runs over budget (upstream log)", over),
        ("usage != upstream", mismatch),
        ("leaked keys", leaked),
        ("leaked URL credentials: responses", url_leaks["responses"]),
        (f"leaked: traces ({len(written) - 1}) + proxy log", url_leaks["traces + log"]),
        ("internal address in responses", addressed),
        ("silent drops (cases below)", t.silent_drops),
        *[(f"  {k}", v) for k, v in sorted(t.cases.items())],
        ("lost answers (fb: error after a round)", lost),
        ("  fb requests answered with an error", len(t.fb_errors)),
        ("errors not JSON (text/plain ...)", t.not_json),
        *[(f"{k}", v) for k, v in t.lifecycle.items()],
        ("trace_dir: files / MB", f"{len(trace_files)}/{trace_mb:.1f}"),
        ("p50 latency s", round(statistics.median(lat), 2) if lat else 0.0),
        ("p95 latency s", round(p95, 2)),
    ]
    for name, value in rows:
        print(f"| {name:<50} | {value!s:>9} |")


if __name__ == "__main__":
    main()
