"""The in-process event log: replay after a position, live following, bounds and expiry."""

from __future__ import annotations

import asyncio

from sluicegate.store.event_log import Entry, MemoryEventLog


async def read_all(log: MemoryEventLog, log_id: str, after: int) -> list[Entry]:
    return [entry async for entry in log.read(log_id, after, poll_s=0.05)]


async def test_a_reader_replays_after_its_position_then_follows_to_the_end() -> None:
    log = MemoryEventLog()
    await log.append("s", [(0, b"a"), (1, b"b")])
    reader = asyncio.ensure_future(read_all(log, "s", 0))
    await asyncio.sleep(0.01)
    await log.append("s", [(2, b"c")])
    await log.end("s")
    assert await reader == [(1, b"b"), (2, b"c")]
    assert await read_all(log, "s", -1) == [(0, b"a"), (1, b"b"), (2, b"c")]
    assert await read_all(log, "unknown", -1) == []


async def test_a_reader_stops_when_the_writer_is_gone() -> None:
    log = MemoryEventLog()
    await log.append("s", [(0, b"a")])

    async def gone() -> bool:
        return False

    assert [entry async for entry in log.read("s", -1, gone, poll_s=0.05)] == [(0, b"a")]


async def test_the_log_is_bounded_in_events_streams_and_time() -> None:
    log = MemoryEventLog(ttl_s=0.05, max_events=3, max_logs=2)
    await log.append("a", [(i, b"%d" % i) for i in range(5)])
    await log.end("a")
    assert [seq for seq, _ in await read_all(log, "a", -1)] == [2, 3, 4]  # the oldest went first
    await log.append("b", [(0, b"b")])
    await log.append("c", [(0, b"c")])
    assert not await log.exists("a") and await log.exists("c")  # the least recently written went
    await asyncio.sleep(0.1)
    assert not await log.exists("c")  # expired


async def test_an_owner_claims_at_most_its_limit_and_a_renewal_is_not_a_new_claim() -> None:
    log = MemoryEventLog()
    assert await log.claim("key_a", "r1", 2) and await log.claim("key_a", "r2", 2)
    assert not await log.claim("key_a", "r3", 2)  # full
    assert await log.claim("key_a", "r1", 1)  # a renewal, whatever the count
    assert await log.claim("key_b", "r1", 2)  # another owner's room is its own
    await log.unclaim("key_a", "r1")
    assert await log.claim("key_a", "r3", 2)
