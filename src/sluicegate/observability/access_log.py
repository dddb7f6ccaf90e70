"""One log line per request, written after its last byte (an exchange hook, off the request path).
Requests no front door took (models, an unknown path) get a shorter line from the request-id
middleware: the API's at info level, health checks, metrics scrapes and the playground at debug.

It names the request id, the key's id, the model and deployment, the status, the time to the
first token, the total time and the tokens; never the key itself, the prompt or the answer.
Those are written only when debug logging is asked for (`serve --log-level debug`), on a
separate debug line.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.types import Scope

from sluicegate.core.exchange import Exchange

log = logging.getLogger("sluicegate.access")


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def access_fields(exchange: Exchange) -> dict[str, Any]:
    usage = exchange.usage
    fields: dict[str, Any] = {
        "request_id": exchange.request_id,
        "key_id": exchange.key_id,
        "door": exchange.door,
        "model": exchange.model or None,
        "served_by": exchange.served_by or None,
        "deployment": exchange.deployment or exchange.served_by or None,
        "attempts": exchange.attempts or None,
        "stream": exchange.stream,
        "status": exchange.status,
        "ttft_ms": _ms(exchange.ttft_s),
        "total_ms": _ms(exchange.total_s),
        "tokens_in": usage.prompt_tokens if usage else None,
        "tokens_out": usage.completion_tokens if usage else None,
        "finish": exchange.finish_reason,
        "error_type": exchange.error_type,
        "error_code": exchange.error_code,
    }
    if exchange.client_gone:
        fields["client_gone"] = True
    return fields


def access_line(fields: dict[str, Any]) -> str:
    """`req_... key=key_... model=... status=200 ttft_ms=... total_ms=... tokens_in=...`"""
    return " ".join(
        [
            str(fields["request_id"]),
            *(
                f"{name}={'true' if value is True else value}"
                for name, value in fields.items()
                if value is not None and value is not False and name != "request_id"
            ),
        ]
    )


class AccessLog:
    async def admit(self, exchange: Exchange) -> None:
        return None

    async def settle(self, exchange: Exchange) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        fields = access_fields(exchange)
        log.info(access_line(fields), extra={"fields": fields})
        if log.isEnabledFor(logging.DEBUG):
            content = {
                "request_id": exchange.request_id,
                "messages": exchange.request.messages if exchange.request is not None else None,
                "answer": "".join(exchange.output_parts),
            }
            log.debug("request %s content (debug logging)", exchange.request_id, extra={"fields": content})


def log_other_request(scope: Scope, request_id: str, status: int, seconds: float) -> None:
    """The line of a request that is not an exchange: method, path (never the query), status."""
    path = str(scope.get("path", ""))
    level = logging.INFO if path.startswith("/v1/") else logging.DEBUG
    if not log.isEnabledFor(level):
        return
    fields = {
        "request_id": request_id,
        "method": scope.get("method"),
        "path": path,
        "status": status,
        "total_ms": _ms(seconds),
    }
    log.log(level, access_line(fields), extra={"fields": fields})
