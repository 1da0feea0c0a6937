"""Operators watching ``ponder serve``: OpenTelemetry spans (the SDK's in-memory exporter) through
real requests of the official ``openai`` client, ``/metrics`` scraped and parsed with
``prometheus_client``'s parser, replicas, and what an answer tells (headers, ``ponder`` object).

The upstream is a real loopback HTTP server (``rm``) or a ``FakeBackend``, as in test_serve.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ponder.backends.fake import FakeBackend
from ponder.orchestrator import Session
from ponder.orchestrator.report import run_report
from ponder.orchestrator.usage import Usage
from ponder.protocol.actions import Outcome
from ponder.serve import ServeConfig, ServerThread
from ponder.serve.telemetry import configure_tracing

pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)

QUESTION = "QUESTION-TEXT-7c1 what is 2+2?"
REPLY = "REPLY-TEXT-9f2 so the answer is \\boxed{4}"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
INNER = {"name": "cot", "temperature": 0.7, "max_tokens": 50}
CHAINS = {
    "cot": {"strategy": {"name": "cot", "max_tokens": 50}},
    "sc2": {"strategy": {"name": "sample", "k": 2, "seed": 0, "inner": INNER}},
    "ad8": {"strategy": {"name": "adaptive", "k": 8, "seed": 0, "inner": INNER}},
    "tight": {"strategy": {"name": "cot", "max_tokens": 50}, "budget": {"total_tokens": 70}},
}
MSG = [{"role": "user", "content": QUESTION}]


def reset_tracing() -> None:
    """Put the API's no-op state back (what opentelemetry's own test utils reset), so other
    tests run untraced."""
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.shutdown()
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = trace.Once()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The global tracer provider, an SDK one with an in-memory exporter, for one test."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    yield exporter
    reset_tracing()


def chat_reply(body: dict[str, Any], path: str, i: int) -> tuple[int, dict[str, Any]]:
    """The loopback upstream: ``n`` choices of ``REPLY``, 7 prompt + 9 completion tokens each."""
    n = body.get("n") or 1
    choices = [
        {"index": j, "message": {"role": "assistant", "content": REPLY}, "finish_reason": "stop"}
        for j in range(n)
    ]
    usage = {"prompt_tokens": 7, "completion_tokens": 9 * n, "total_tokens": 7 + 9 * n}
    return 200, {
        "id": f"c{i}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model"),
        "choices": choices,
        "usage": usage,
    }


def serve_cfg(url: str, **kw: Any) -> ServeConfig:
    return ServeConfig.from_dict(
        {
            "upstream": {"kind": "openai", "base_url": f"{url}/v1", "model": "m"},
            "chains": CHAINS,
            "retry": {"max_attempts": 2, "initial_backoff_s": 0.01, "max_backoff_s": 0.02},
            **kw,
        }
    )


def client(srv: ServerThread, key: str = "x") -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key=key, max_retries=0)


def header(headers: dict[str, str], name: str) -> str | None:
    return next((v for k, v in headers.items() if k.lower() == name), None)


def scrape(srv: ServerThread, **kw: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed: ``{(sample name, sorted labels): value}``."""
    r = httpx.get(f"{srv.url}/metrics", timeout=10, **kw)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(metrics: dict, name: str, **labels: str) -> float:
    """The sum of ``name`` over the samples whose labels include ``labels``."""
    return sum(
        v
        for (n, ls), v in metrics.items()
        if n == name and all((k, want) in ls for k, want in labels.items())
    )


def all_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if f"{s.context.trace_id:032x}" == TRACE_ID]


def ancestors(span: Any, spans: list[Any]) -> list[int]:
    by_id = {s.context.span_id: s for s in spans}
    out = []
    while span.parent is not None:
        out.append(span.parent.span_id)
        span = by_id.get(span.parent.span_id)
        if span is None:
            break
    return out


def span_values(span: Any) -> list[str]:
    vals = [str(v) for v in span.attributes.values()]
    for event in span.events:
        vals += [str(v) for v in event.attributes.values()]
    return vals


# -- OpenTelemetry -------------------------------------------------------------------------------


def test_a_chain_request_is_one_trace_from_client_to_upstream(rm, spans, tmp_path):
    up = rm(chat_reply)
    with ServerThread(serve_cfg(up.url, trace_dir=str(tmp_path))) as srv:
        raw = client(srv).chat.completions.with_raw_response.create(
            model="ponder:sc2", messages=MSG, extra_headers={"traceparent": TRACEPARENT}
        )
        answer = raw.parse()
    run_id = raw.headers["x-ponder-trace-id"]
    assert answer.choices[0].message.content == REPLY
    got = all_spans(spans)
    by_name = {s.name: s for s in got}
    # the proxy's SERVER span continues the client's trace
    server = by_name["POST /v1/chat/completions"]
    assert server.kind == trace.SpanKind.SERVER
    assert server.parent.span_id == int(PARENT_ID, 16)
    assert server.attributes["ponder.chain"] == "sc2"
    assert server.attributes["http.response.status_code"] == 200
    assert list(server.attributes["ponder.run_ids"]) == [run_id]
    # one run span with Ponder's attributes, its id tied to x-ponder-trace-id
    run = by_name["invoke_workflow sc2"]
    assert server.context.span_id in ancestors(run, got)
    a = run.attributes
    assert a["gen_ai.operation.name"] == "invoke_workflow"
    assert (a["ponder.chain"], a["ponder.strategy"], a["ponder.run_id"]) == (
        "sc2",
        "sample",
        run_id,
    )
    assert (a["ponder.samples.planned"], a["ponder.samples.drawn"], a["ponder.samples.used"]) == (
        2,
        2,
        2,
    )
    assert a["ponder.stop_reason"] == "complete"
    billed = (answer.usage.prompt_tokens, answer.usage.completion_tokens)
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == billed
    # a step span, and the model call as a GenAI CLIENT span under it
    step = by_name["ponder.step generate"]
    assert step.parent.span_id == run.context.span_id
    call = by_name["chat m"]
    assert call.kind == trace.SpanKind.CLIENT
    assert call.parent.span_id == step.context.span_id
    c = call.attributes
    assert c["gen_ai.operation.name"] == "chat"
    assert c["gen_ai.request.model"] == "m"
    assert c["gen_ai.request.choice.count"] == 2
    assert (c["gen_ai.usage.input_tokens"], c["gen_ai.usage.output_tokens"]) == billed
    assert list(c["gen_ai.response.finish_reasons"]) == ["stop", "stop"]
    assert (c["ponder.role"], c["ponder.purpose"]) == ("default", "reason")
    # the upstream received the model call's context: same trace, parent = the chat span
    [sent] = [h for h in up.headers if header(h, "traceparent")]
    _, trace_id, parent, _ = header(sent, "traceparent").split("-")
    assert (trace_id, int(parent, 16)) == (TRACE_ID, call.context.span_id)
    # the JSONL trace names the OTel trace and the run span
    events = [json.loads(line) for line in (tmp_path / f"{run_id}.jsonl").read_text().splitlines()]
    start = events[0]
    assert start["type"] == "run_start"
    assert start["otel_trace_id"] == TRACE_ID
    assert start["otel_span_id"] == f"{run.context.span_id:016x}"
    assert events[-1]["report"]["stop_reason"] == "complete"
    # no message content, no answer, by default
    for s in got:
        for v in span_values(s):
            assert "QUESTION-TEXT" not in v and "REPLY-TEXT" not in v, (s.name, v)


def test_message_content_is_recorded_only_when_enabled(rm, spans):
    up = rm(chat_reply)
    with ServerThread(serve_cfg(up.url, telemetry={"record_content": True})) as srv:
        client(srv).chat.completions.create(
            model="ponder:cot", messages=MSG, extra_headers={"traceparent": TRACEPARENT}
        )
    [call] = [s for s in all_spans(spans) if s.name == "chat m"]
    sent = json.loads(call.attributes["gen_ai.input.messages"])
    assert QUESTION in sent[-1]["parts"][0]["content"]
    said = json.loads(call.attributes["gen_ai.output.messages"])
    assert said[0]["parts"][0]["content"] == REPLY


def test_retries_and_failures_are_span_events_by_error_type(rm, spans):
    def flaky(body, path, i):
        if i == 1:
            return 500, {"error": {"message": "boom sk-secret-in-a-body"}}
        return chat_reply(body, path, i)

    up = rm(flaky)
    with ServerThread(serve_cfg(up.url)) as srv:
        client(srv).chat.completions.create(
            model="ponder:cot", messages=MSG, extra_headers={"traceparent": TRACEPARENT}
        )
    [call] = [s for s in all_spans(spans) if s.name == "chat m"]
    [retry] = [e for e in call.events if e.name == "ponder.retry"]
    assert retry.attributes["error.type"] == "UpstreamServerError"
    assert retry.attributes["ponder.attempt"] == 1
    assert all("sk-secret" not in v for v in span_values(call))


def test_pass_through_carries_the_trace_context_upstream(rm, spans):
    up = rm(chat_reply)
    with ServerThread(serve_cfg(up.url)) as srv:
        client(srv).chat.completions.create(
            model="m", messages=MSG, extra_headers={"traceparent": TRACEPARENT}
        )
    got = all_spans(spans)
    [server] = [s for s in got if s.name == "POST /v1/chat/completions"]
    assert server.attributes["ponder.chain"] == "(passthrough)"
    _, trace_id, parent, _ = header(up.headers[0], "traceparent").split("-")
    assert trace_id == TRACE_ID
    [sender] = [s for s in got if s.context.span_id == int(parent, 16)]  # the request's own span
    assert sender is server or server.context.span_id in ancestors(sender, got)


def test_without_an_sdk_the_incoming_context_still_reaches_the_upstream(rm):
    """No tracer provider configured (the API's no-op): nothing is recorded, but the client's
    ``traceparent`` is passed on unchanged."""
    up = rm(chat_reply)
    with ServerThread(serve_cfg(up.url)) as srv:
        client(srv).chat.completions.create(
            model="ponder:cot", messages=MSG, extra_headers={"traceparent": TRACEPARENT}
        )
    assert header(up.headers[0], "traceparent") == TRACEPARENT


NO_OTEL = """
import sys, asyncio
sys.modules["opentelemetry"] = None  # as if not installed: every import of it fails
import ponder
from ponder.backends.fake import FakeBackend
from ponder.strategies.cot import ChainOfThought

async def main():
    async with ponder.Session(FakeBackend(lambda r, i: "so \\\\boxed{4}")) as s:
        r = await s.run(ChainOfThought(max_tokens=20), "What is 2+2?")
    print(r.answer, r.report.stop_reason, r.usage.by_role["default"].calls)

asyncio.run(main())
"""


def test_without_opentelemetry_runs_are_untraced_and_import_ponder_stays_free_of_it():
    done = subprocess.run(
        [sys.executable, "-c", NO_OTEL], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["4", "complete", "1"]
    probe = "import sys, ponder; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


class OtlpReceiver:
    """A loopback OTLP/HTTP endpoint that keeps what it is sent (protobuf bodies by path)."""

    def __init__(self) -> None:
        got: list[tuple[str, bytes]] = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                got.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.got = got
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def test_ponder_serve_exports_spans_over_otlp_from_the_standard_variables(monkeypatch):
    """The worked example of docs/serve.md, with a loopback receiver as the collector."""
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    monkeypatch.delenv("FASTAPI_OTEL_AUTO_CONFIGURE", raising=False)
    assert not configure_tracing("r9")  # no endpoint set: nothing
    receiver = OtlpReceiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ponder-test")
    try:
        assert configure_tracing("r9")
        assert not configure_tracing("r9")  # one provider: a second call changes nothing
        with ServerThread(serve_cfg("http://127.0.0.1:9"), backend=FakeBackend(fake_reply)) as srv:
            client(srv).chat.completions.create(model="ponder:cot", messages=MSG)
        trace.get_tracer_provider().force_flush()
    finally:
        reset_tracing()
        receiver.server.shutdown()
    names, resources = set(), set()
    for path, body in receiver.got:
        assert path == "/v1/traces"
        req = ExportTraceServiceRequest.FromString(body)
        for rs in req.resource_spans:
            resources |= {(a.key, a.value.string_value) for a in rs.resource.attributes}
            names |= {s.name for ss in rs.scope_spans for s in ss.spans}
    assert {"invoke_workflow cot", "chat fake", "POST /v1/chat/completions"} <= names
    assert {("service.name", "ponder-test"), ("service.instance.id", "r9")} <= resources


# -- Prometheus ----------------------------------------------------------------------------------


def test_metrics_count_requests_tokens_and_calls_with_bounded_labels(rm):
    up = rm(chat_reply)
    stranger = f"free-text-{uuid.uuid4().hex}"
    with ServerThread(serve_cfg(up.url, telemetry={"replica": "r1"})) as srv:
        c = client(srv)
        for _ in range(2):
            c.chat.completions.create(model="ponder:cot", messages=MSG)
        c.chat.completions.create(model=f"ponder:cot/{stranger}", messages=MSG)  # client's model
        c.chat.completions.create(model=stranger, messages=MSG)  # pass-through
        with pytest.raises(openai.BadRequestError):
            c.chat.completions.create(model=f"ponder:{stranger}", messages=MSG)  # unknown chain
        m = scrape(srv)
    labels = {v for _, ls in m for _, v in ls}
    assert not any(stranger in v for v in labels), "a client's model name became a label"
    assert {v for _, ls in m for k, v in ls if k == "replica"} == {"r1"}
    assert value(m, "ponder_requests_total", chain="cot", status="200") == 3
    assert value(m, "ponder_requests_total", chain="(passthrough)", status="200") == 1
    assert value(m, "ponder_requests_total", chain="(none)", status="400") == 1
    assert value(m, "ponder_request_duration_seconds_count", chain="cot") == 3
    # tokens by chain and configured model; the client's own model name is "(other)"
    tok = "ponder_tokens_total"
    assert value(m, tok, chain="cot", role="default", model="m", type="input") == 14
    assert value(m, tok, chain="cot", role="default", model="m", type="output") == 18
    assert value(m, tok, chain="cot", model="(other)", type="input") == 7
    assert value(m, "ponder_upstream_calls_total", chain="cot", outcome="ok") == 3
    assert value(m, "ponder_runs_total", chain="cot", stop_reason="complete") == 3
    assert value(m, "ponder_run_duration_seconds_count", chain="cot", outcome="ok") == 3
    assert value(m, "ponder_runs_in_flight", chain="cot") == 0
    assert ("ponder_runs_in_flight", (("chain", "sc2"), ("replica", "r1"))) in m


def test_metrics_count_retries_and_failed_calls_by_error_type(rm):
    def failing(body, path, i):
        return (500, {"error": {"message": "down"}}) if i <= 3 else chat_reply(body, path, i)

    up = rm(failing)
    with ServerThread(serve_cfg(up.url)) as srv:
        with pytest.raises(openai.APIStatusError):  # 2 attempts, both 500
            client(srv).chat.completions.create(model="ponder:cot", messages=MSG)
        # 1 attempt 500, then a retry that succeeds
        client(srv).chat.completions.create(model="ponder:cot", messages=MSG)
        m = scrape(srv)
    retries = "ponder_upstream_retries_total"
    assert value(m, retries, chain="cot", model="m", reason="UpstreamServerError") == 2
    calls = "ponder_upstream_calls_total"
    assert value(m, calls, chain="cot", outcome="UpstreamServerError") == 1
    assert value(m, calls, chain="cot", outcome="ok") == 1
    assert value(m, "ponder_requests_total", chain="cot", status="502") == 1
    assert value(m, "ponder_run_duration_seconds_count", chain="cot", outcome="error") == 1


def fake_reply(request, i):
    return "four words then \\boxed{4}"


def test_early_stops_budget_cuts_and_what_an_answer_tells():
    with ServerThread(serve_cfg("http://127.0.0.1:9"), backend=FakeBackend(fake_reply)) as srv:
        c = client(srv)
        raw = c.chat.completions.with_raw_response.create(model="ponder:ad8", messages=MSG)
        early = raw.parse()
        tight = c.chat.completions.with_raw_response.create(model="ponder:tight", messages=MSG)
        m = scrape(srv)
    body = early.model_extra["ponder"]
    assert body["stop_reasons"] == ["early_stop"]
    assert (body["samples_planned"], body["samples_drawn"], body["samples_used"]) == (
        [8],
        [2],
        [2],
    )
    saved = body["tokens_saved"][0]
    assert saved == 6 * 4  # 6 samples not drawn x the 4 tokens (words) each drawn one took
    role = body["usage_by_role"]["default"]
    usage = early.usage
    assert (role["prompt_tokens"], role["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert role["calls"] == body["calls"]
    # the headers an operator logs
    h = raw.headers
    assert h["x-ponder-chain"] == "ad8"
    assert int(h["x-ponder-total-tokens"]) == usage.total_tokens
    assert int(h["x-ponder-upstream-calls"]) == body["calls"]
    assert h["x-ponder-stop-reason"] == "early_stop"
    assert tight.headers["x-ponder-stop-reason"] == "budget"
    assert tight.parse().model_extra["ponder"]["budget_left"] == [
        70 - tight.parse().usage.total_tokens
    ]
    # and the counters
    assert value(m, "ponder_early_stops_total", chain="ad8") == 1
    assert value(m, "ponder_early_stop_saved_tokens_total", chain="ad8") == saved
    assert value(m, "ponder_runs_total", chain="ad8", stop_reason="early_stop") == 1
    assert value(m, "ponder_budget_cuts_total", chain="tight") == 1
    assert value(m, "ponder_runs_total", chain="tight", stop_reason="budget") == 1
    # an injected backend serves every model name: labelled "upstream"
    out = value(m, "ponder_tokens_total", chain="ad8", model="upstream", type="output")
    assert out == usage.completion_tokens


def test_a_stream_names_its_chain_in_a_header():
    body = {"model": "ponder:cot", "messages": MSG, "stream": True}
    with (
        ServerThread(serve_cfg("http://127.0.0.1:9"), backend=FakeBackend(fake_reply)) as srv,
        httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body, timeout=30) as r,
    ):
        assert r.headers["x-ponder-chain"] == "cot"
        text = "".join(r.iter_text())
    assert '"stop_reasons":["complete"]' in text.replace(" ", "")


def test_replicas_expose_their_own_metrics_and_write_their_own_traces(monkeypatch, tmp_path):
    backend = FakeBackend(fake_reply)
    one = serve_cfg("http://127.0.0.1:9", trace_dir=str(tmp_path), telemetry={"replica": "a"})
    with ServerThread(one, backend=backend) as a:
        monkeypatch.setenv("PONDER_REPLICA", "b")  # wins over the file's replica
        with ServerThread(one, backend=backend) as b:
            ra = client(a).chat.completions.with_raw_response.create(
                model="ponder:cot", messages=MSG
            )
            rb = client(b).chat.completions.with_raw_response.create(
                model="ponder:cot", messages=MSG
            )
            ma, mb = scrape(a), scrape(b)
    assert {v for _, ls in ma for k, v in ls if k == "replica"} == {"a"}
    assert {v for _, ls in mb for k, v in ls if k == "replica"} == {"b"}
    assert value(ma, "ponder_requests_total", chain="cot") == 1
    assert value(mb, "ponder_requests_total", chain="cot") == 1
    assert (tmp_path / "a" / f"{ra.headers['x-ponder-trace-id']}.jsonl").is_file()
    assert (tmp_path / "b" / f"{rb.headers['x-ponder-trace-id']}.jsonl").is_file()
    assert not list(tmp_path.glob("*.jsonl"))


def test_metrics_need_the_proxy_key_when_one_is_set_and_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("PONDER_TEST_PROXY_KEY", "proxy-key-abc")
    backend = FakeBackend(fake_reply)
    guarded = serve_cfg("http://127.0.0.1:9", api_key_env="PONDER_TEST_PROXY_KEY")
    with ServerThread(guarded, backend=backend) as srv:
        assert httpx.get(f"{srv.url}/metrics").status_code == 401
        auth = {"authorization": "Bearer proxy-key-abc"}
        assert value(scrape(srv, headers=auth), "ponder_requests_total") == 0
    off = serve_cfg("http://127.0.0.1:9", telemetry={"metrics": False})
    with ServerThread(off, backend=backend) as srv:
        r = httpx.get(f"{srv.url}/metrics")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_a_bad_replica_name_is_a_config_error():
    with pytest.raises(Exception, match="replica"):
        serve_cfg("http://127.0.0.1:9", telemetry={"replica": "a b/c"})


# -- the run report -------------------------------------------------------------------------------


def test_report_estimates_tokens_saved_by_stopped_traces():
    """DeepConf-style: 3 traces finished at ~100 tokens, one was stopped at 40."""

    class K4:
        k = 4

    samples = [Outcome("4", "", data={"tokens": 100}) for _ in range(3)]
    samples.append(Outcome(None, "", data={"tokens": 40, "stopped_at": 40}))
    out = Outcome("4", "", samples=samples)
    report = run_report(K4(), out, Usage(calls=4), None, False)
    assert (report.stop_reason, report.samples_drawn, report.samples_used) == ("early_stop", 4, 3)
    assert report.tokens_saved == 60
    cut = run_report(K4(), out, Usage(calls=4), None, True)
    assert (cut.stop_reason, cut.early_stop, cut.tokens_saved) == ("budget", False, 0)


async def test_a_run_without_the_proxy_reports_too():
    async with Session(FakeBackend(fake_reply)) as s:
        from ponder.strategies.cot import ChainOfThought

        r = await s.run(ChainOfThought(max_tokens=20), QUESTION)
    assert r.report.stop_reason == "complete"
    assert (r.report.samples_drawn, r.report.samples_used) == (1, 1)
    assert r.trace.of_type("run_end")[0]["report"]["stop_reason"] == "complete"
