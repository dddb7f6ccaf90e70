"""OpenTelemetry traces: one span per request, in the SDK's in-memory exporter, and over OTLP/HTTP
to a local receiver from a real gateway process when an endpoint is configured."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from sluicegate.gateway import Gateway
from sluicegate.observability.tracing import Tracing, traces_url, tracing_from_settings
from tests.support.inprocess import in_process, settings_for
from tests.support.openai_upstream import OpenAIUpstream, Reply
from tests.support.server import start_gateway


def chat(model: str, stream: bool) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "one two"}], "stream": stream}


async def test_one_span_per_request_with_model_tokens_and_status(
    tmp_path: Path, clean_upstream: OpenAIUpstream
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = settings_for(
        tmp_path, [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}]
    )
    gateway = Gateway.build(settings)
    gateway.observers.append(Tracing(provider))
    async with in_process(settings, gateway) as gw:
        url = "/v1/chat/completions"
        ok = await gw.client.post(url, json=chat("up", True), headers=gw.auth(**{"x-request-id": "trace-me"}))
        assert ok.status_code == 200
        clean_upstream.enqueue(Reply(status=500, body=b'{"error": {"message": "boom"}}'))
        failed = await gw.client.post(url, json=chat("up", False), headers=gw.auth())
        assert failed.status_code == 502
        await gw.gateway.wait_settled()

    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    span = next(s for s in spans if s.attributes["sluicegate.request_id"] == "trace-me")
    assert span.name == "chat up"
    assert span.kind is SpanKind.SERVER
    assert span.attributes["gen_ai.request.model"] == "up"
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["gen_ai.usage.input_tokens"] == 5
    assert span.attributes["gen_ai.usage.output_tokens"] == 2
    assert span.attributes["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET
    assert [event.name for event in span.events] == ["first_token"]
    assert span.start_time <= span.events[0].timestamp <= span.end_time
    broken = next(s for s in spans if s is not span)
    assert broken.status.status_code is StatusCode.ERROR
    assert broken.attributes["http.response.status_code"] == 502
    assert broken.attributes["error.type"] == "upstream_error"


def test_no_endpoint_no_tracing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert tracing_from_settings(None) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    tracing = tracing_from_settings(None)
    assert isinstance(tracing, Tracing)
    tracing.provider.shutdown()
    assert traces_url("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/traces"
    assert traces_url("http://127.0.0.1:4318/v1/traces/") == "http://127.0.0.1:4318/v1/traces"


class Receiver:
    """A local OTLP/HTTP traces receiver that decodes what it gets."""

    def __init__(self) -> None:
        self.spans: list[object] = []
        self.port = 0
        self._ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        assert self._ready.wait(10)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        runner = web.AppRunner(app, handle_signals=False)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._ready.set()
        loop.run_forever()

    async def _traces(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


def test_a_configured_endpoint_receives_spans_over_otlp(
    tmp_path: Path, clean_upstream: OpenAIUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = Receiver()
    config = {
        "server": {"otel_endpoint": f"http://127.0.0.1:{receiver.port}"},
        "models": [{"name": "up", "provider": "openai", "base_url": clean_upstream.base_url}],
    }
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")  # the gateway exports its batches quickly
    gateway = start_gateway(tmp_path, config)
    try:
        headers = {"Authorization": f"Bearer {gateway.api_key}", "x-request-id": "over-otlp"}
        response = httpx.post(gateway.v1 + "/chat/completions", json=chat("up", True), headers=headers)
        assert response.status_code == 200
        deadline = time.monotonic() + 30
        while not receiver.spans and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        gateway.stop()
    assert len(receiver.spans) == 1
    span = receiver.spans[0]
    attributes = {a.key: a.value for a in span.attributes}  # type: ignore[attr-defined]
    assert span.name == "chat up"  # type: ignore[attr-defined]
    assert attributes["sluicegate.request_id"].string_value == "over-otlp"
    assert attributes["gen_ai.usage.output_tokens"].int_value == 2
