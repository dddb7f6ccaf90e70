"""What every front door shares: authentication, routing, the hooks, the first-byte boundary,
the client leaving, and settling the exchange. A door brings only its own wire format: how it
finds the key, how it renders an error, and how it encodes canonical events.
"""

from sluicegate.api.serving.doors import Door, bearer_secret, door_endpoint, request_id, with_request_id
from sluicegate.api.serving.observe import observe
from sluicegate.api.serving.serve import routed, serve_chat, serve_whole
from sluicegate.api.serving.stream_body import StreamEncoder, keepalive_of
from sluicegate.http.waiting import unless_client_leaves

__all__ = [
    "Door",
    "StreamEncoder",
    "bearer_secret",
    "door_endpoint",
    "keepalive_of",
    "observe",
    "request_id",
    "routed",
    "serve_chat",
    "serve_whole",
    "unless_client_leaves",
    "with_request_id",
]
