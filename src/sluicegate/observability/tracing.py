"""OpenTelemetry traces, when the `otel` extra is installed and an endpoint is configured
(`server.otel_endpoint`, or the standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
`OTEL_EXPORTER_OTLP_ENDPOINT`). One span per request, built after its last byte from the
exchange (its start, first token and end times, model, tokens, status), so tracing adds
nothing to the request path; spans leave in batches from the SDK's own thread. Attribute
names follow OpenTelemetry's GenAI conventions where they have one.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from sluicegate.core.exchange import Exchange

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("sluicegate.tracing")
_ENV_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def configured_endpoint(setting: str | None) -> str | None:
    return setting or next((os.environ[name] for name in _ENV_ENDPOINTS if os.environ.get(name)), None)


def traces_url(endpoint: str) -> str:
    """A base OTLP/HTTP address gets the traces path; a full one is kept."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def tracing_from_settings(otel_endpoint: str | None) -> Tracing | None:
    """The tracing hook, or None when no endpoint is configured or the extra is missing."""
    if not configured_endpoint(otel_endpoint):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "an OTLP endpoint is configured but the `otel` extra is not installed"
            " (pip install 'sluicegate[otel]'); no traces are sent"
        )
        return None
    exporter = OTLPSpanExporter(endpoint=traces_url(otel_endpoint)) if otel_endpoint else OTLPSpanExporter()
    service = os.environ.get("OTEL_SERVICE_NAME", "sluicegate")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return Tracing(provider)


class Tracing:
    """An exchange hook that records each finished request as a span."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("sluicegate")

    async def admit(self, exchange: Exchange) -> None:
        return None

    async def settle(self, exchange: Exchange) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode

        start = int(exchange.created * 1e9)
        end = start + int((exchange.total_s or 0.0) * 1e9)
        span = self.tracer.start_span(
            f"chat {exchange.served_by or exchange.model or exchange.door}",
            kind=SpanKind.SERVER,
            start_time=start,
            attributes=_attributes(exchange),
        )
        if exchange.ttft_s is not None:
            span.add_event("first_token", timestamp=start + int(exchange.ttft_s * 1e9))
        if exchange.status >= 400:
            span.set_status(Status(StatusCode.ERROR, exchange.error_code or exchange.error_type or None))
        span.end(end_time=end)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.provider.shutdown)


def _attributes(exchange: Exchange) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": exchange.model,
        "gen_ai.provider.name": exchange.provider,
        "http.response.status_code": exchange.status,
        "sluicegate.request_id": exchange.request_id,
        "sluicegate.door": exchange.door,
        "sluicegate.stream": exchange.stream,
    }
    optional = {
        "gen_ai.response.model": exchange.upstream_model,
        "gen_ai.response.finish_reasons": [exchange.finish_reason] if exchange.finish_reason else None,
        "gen_ai.usage.input_tokens": exchange.usage.prompt_tokens if exchange.usage else None,
        "gen_ai.usage.output_tokens": exchange.usage.completion_tokens if exchange.usage else None,
        "error.type": exchange.error_code or exchange.error_type,
        "sluicegate.model": exchange.served_by,
        "sluicegate.deployment": exchange.deployment,
        "sluicegate.attempts": exchange.attempts or None,
        "sluicegate.key_id": exchange.key_id,
        "sluicegate.ttft_ms": round(exchange.ttft_s * 1000, 1) if exchange.ttft_s is not None else None,
        "sluicegate.client_gone": exchange.client_gone or None,
    }
    attributes.update({name: value for name, value in optional.items() if value not in (None, "")})
    return attributes
