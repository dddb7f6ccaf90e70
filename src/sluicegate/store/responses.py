"""Where the Responses door keeps the responses it made (`store: true`, OpenAI's default).

A stored response is what a later request needs to continue it (`previous_response_id`): its
input items and its output items, plus the response object as returned, so `GET
/v1/responses/{id}` answers with the same body. Every lookup names the API key asking, and a
response made with another key is as good as absent: a caller learns nothing about others'.

A response may expire (`expires_at`, from the `store_ttl_days` setting): from then on it is as
good as absent, and `purge_expired` removes it. A background response also names the gateway
process generating it (`owner`), so a reader elsewhere can tell one whose process died.

The protocol is small and async so a PostgreSQL store can stand beside the SQLite one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(slots=True)
class StoredResponse:
    id: str
    key_id: str
    created_at: float
    previous_response_id: str | None
    input_items: list[dict[str, Any]]  # this request's own input, normalised, with ids
    response: dict[str, Any]  # the response object as returned (its `output` holds the output items)
    owner: str | None = None  # the gateway process generating a background response
    expires_at: float | None = None  # unix time; None: kept until deleted


class ResponseStore(Protocol):
    async def put(self, record: StoredResponse) -> None:
        """Keep a response (a second put with the same id replaces it)."""

    async def get(self, response_id: str, key_id: str) -> StoredResponse | None:
        """The response, if it exists and belongs to this key."""

    async def chain(self, response_id: str, key_id: str, limit: int = 1000) -> list[StoredResponse]:
        """The conversation ending at this response, oldest first: it and the responses its
        `previous_response_id`s lead back to (this key's only). Empty if it is not found."""

    async def delete(self, response_id: str, key_id: str) -> bool:
        """Remove it; False if there was no such response for this key."""

    async def purge_expired(self) -> int:
        """Remove the responses whose retention is over; how many."""

    async def close(self) -> None: ...
