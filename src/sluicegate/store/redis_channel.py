"""Listening to a Redis channel for as long as a task runs: one loop for every channel the
gateway follows (shared cooldowns, cancels of resumable streams), so a lost connection is
handled the same way everywhere: logged, then subscribed again after a pause that doubles
from 0.5 s to 10 s. Messages published while it was away are lost; the callers' state does
not depend on them alone (keys hold it; a message only makes it known sooner)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("sluicegate.store")


async def listen(
    client: Any, channel: str, on_message: Callable[[str], None], what: str, subscribed: asyncio.Event | None = None
) -> None:
    """`on_message(text)` for each message on `channel`, until cancelled. `subscribed` is set
    while the subscription holds. `what` names the channel in the log line."""
    pause = 0.5
    while True:
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            if subscribed is not None:
                subscribed.set()
            pause = 0.5
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None and message.get("type") == "message":
                    data = message["data"]
                    on_message(data.decode() if isinstance(data, bytes) else str(data))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if subscribed is not None:
                subscribed.clear()
            log.warning("Redis %s channel lost (%s); retrying in %.1f s", what, exc, pause)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)
        finally:
            try:
                await pubsub.aclose()
            except Exception:
                log.debug("closing the Redis subscription failed", exc_info=True)
