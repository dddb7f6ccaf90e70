"""Reading a request body with a size limit, before any of it is parsed."""

from __future__ import annotations

from starlette.requests import ClientDisconnect, Request

from sluicegate.errors import InvalidRequestError, PayloadTooLargeError


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequestError("The Content-Length header is not a number.") from None
        if size > limit:
            raise _too_large(limit)
    parts: list[bytes] = []
    received = 0
    try:
        async for part in request.stream():
            received += len(part)
            if received > limit:
                raise _too_large(limit)
            parts.append(part)
    except ClientDisconnect:
        raise InvalidRequestError("The client disconnected while sending the body.") from None
    return b"".join(parts)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"The request body is larger than the gateway's limit of {limit} bytes.")
