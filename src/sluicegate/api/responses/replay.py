"""Reading a background response's events: from any sequence number, then live to the end.

The event log holds what the generating process wrote (`background.py`). A reader follows it;
when it goes quiet the reader asks whether the owner process is still alive (its heartbeat in
the store, governance/durable.py). A response whose owner died is settled here as `failed`,
so it never stays `in_progress` for ever: the record is stored failed and the event that ends
it is logged, so every other reader ends the same way.

Once the log has no more to give (it ended, expired, or this process cannot see it: no shared
Redis), the stored record says how the response ended, and its terminal event is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson

from sluicegate.api.responses.background import TERMINAL
from sluicegate.gateway import Gateway
from sluicegate.http.event_stream import EventStreamResponse, KeepAlive
from sluicegate.http.sse import KEEPALIVE
from sluicegate.store.responses import StoredResponse

_TERMINAL_EVENTS = tuple(b"event: response." + status.encode() + b"\n" for status in TERMINAL)
OWNER_GONE = "The gateway process generating this response stopped before it was done."
POLL_S = 1.0  # how often the store is asked, when the log cannot be followed


async def settle_orphan(gateway: Gateway, record: StoredResponse) -> StoredResponse:
    """The record as it stands; a running one whose owner process is dead is settled `failed`."""
    body = record.response
    if body.get("status") in TERMINAL or await gateway.instance_alive(record.owner):
        return record
    body["status"] = "failed"
    body["error"] = {"code": "server_error", "message": OWNER_GONE}
    await gateway.responses.put(record)
    return record


def terminal_event(body: dict[str, object], sequence_number: int) -> bytes:
    kind = f"response.{body['status']}".encode()
    return (
        b"event: " + kind + b'\ndata: {"type":"' + kind + b'","sequence_number":'
        + str(sequence_number).encode() + b',"response":' + orjson.dumps(body) + b"}\n\n"
    )


async def follow(gateway: Gateway, record: StoredResponse, after: int) -> AsyncIterator[bytes]:
    """Every event after `after`, then the live ones, to the end of the response."""

    async def alive() -> bool:
        return await gateway.instance_alive(record.owner)

    last = after
    async for seq, data in gateway.events.read(record.id, after, alive, poll_s=gateway.settings.streams.poll_s):
        last = seq
        yield data
        if data.startswith(_TERMINAL_EVENTS):
            return
    while True:
        current = await gateway.responses.get(record.id, record.key_id)
        if current is None:
            return  # deleted meanwhile
        current = await settle_orphan(gateway, current)
        status = current.response.get("status")
        if status in TERMINAL:
            if status == "cancelled":
                return  # OpenAI's stream has no event for it: it just ends
            ending = terminal_event(current.response, last + 1)
            if status == "failed" and (current.response.get("error") or {}).get("message") == OWNER_GONE:
                await gateway.events.append(record.id, [(last + 1, ending)])  # the other readers end so too
                await gateway.events.end(record.id)
            yield ending
            return
        await asyncio.sleep(POLL_S)
        async for seq, data in gateway.events.read(record.id, last, alive, poll_s=gateway.settings.streams.poll_s):
            last = seq
            yield data
            if data.startswith(_TERMINAL_EVENTS):
                return


def event_stream(gateway: Gateway, body: AsyncIterator[bytes], request_id: str) -> EventStreamResponse:
    """Following a log, with the keep-alives of any stream; the client may leave at any time
    (only its reading stops)."""
    server = gateway.settings.server
    keepalive = KeepAlive(KEEPALIVE, server.keepalive_first_s, server.keepalive_interval_s) if server.keepalive else None
    headers = [(b"x-request-id", request_id.encode())]
    return EventStreamResponse(body, headers, None, keepalive, gateway.shutdown)
