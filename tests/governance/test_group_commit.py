"""GroupCommit: many requests' asks in one storage call, each with its own answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from sluicegate.governance.group_commit import GroupCommit, OnePerKey


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay
        self.fail = fail

    async def flush(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("the database went away")
        return [item * 10 for item in items]


async def test_asks_of_one_loop_iteration_share_a_batch_and_keep_their_answers() -> None:
    recorder = Recorder()
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush)
    answers = await asyncio.gather(*(commit.submit(i) for i in range(5)))
    assert answers == [0, 10, 20, 30, 40]
    assert recorder.batches == [[0, 1, 2, 3, 4]]


async def test_asks_made_while_a_batch_is_in_flight_go_in_the_next_one() -> None:
    recorder = Recorder(delay=0.02)
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush, max_batch=3)
    first = commit.submit(1)
    await asyncio.sleep(0.005)  # the first batch is in flight
    later = [commit.submit(i) for i in range(2, 7)]
    assert await first == 10
    assert await asyncio.gather(*later) == [20, 30, 40, 50, 60]
    assert recorder.batches == [[1], [2, 3, 4], [5, 6]]  # one batch at a time, at most max_batch


async def test_a_failed_batch_fails_each_of_its_asks_and_the_next_batch_still_runs() -> None:
    recorder = Recorder(fail=True)
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush)
    asks = [commit.submit(i) for i in range(3)]
    for ask in asks:
        with pytest.raises(ConnectionError):
            await ask
    recorder.fail = False
    assert await commit.submit(7) == 70


async def test_a_batch_with_the_wrong_number_of_answers_is_an_error_not_a_misattribution() -> None:
    async def short(items: Sequence[int]) -> list[int]:
        return [1]

    commit: GroupCommit[int, int] = GroupCommit(short)
    asks = [commit.submit(i) for i in range(2)]
    for ask in asks:
        with pytest.raises(RuntimeError, match="a batch of 2 got 1 answers"):
            await ask


async def test_close_fails_what_still_waits() -> None:
    recorder = Recorder(delay=10)
    commit: GroupCommit[int, int] = GroupCommit(recorder.flush)
    ask = commit.submit(1)
    await asyncio.sleep(0)
    await commit.close()
    with pytest.raises(asyncio.CancelledError):
        await ask


async def test_one_call_per_key_is_shared_by_the_callers_that_come_meanwhile() -> None:
    calls: list[str] = []

    async def take(key: str) -> str:
        calls.append(key)
        await asyncio.sleep(0.01)
        return key.upper()

    once: OnePerKey[str] = OnePerKey()
    answers = await asyncio.gather(*(once.run(k, lambda k=k: take(k)) for k in ("a", "a", "b", "a")))  # type: ignore[misc]
    assert answers == ["A", "A", "B", "A"]
    assert calls == ["a", "b"]
    assert await once.run("a", lambda: take("a")) == "A"  # over: the next call runs again
    assert calls == ["a", "b", "a"]


async def test_a_finished_call_is_forgotten_before_anyone_can_be_handed_it() -> None:
    """Handed a finished call, a caller's retry loop would go round without ever yielding to the
    loop (awaiting a done future does not yield): a worker of the benchmark hung so."""

    async def take() -> bool:
        return True  # finishes in its task's first step

    once: OnePerKey[bool] = OnePerKey()
    first = once.start("k", take)
    await asyncio.sleep(0)  # the call's step runs, then this one, in the same loop iteration
    assert first.done() and first.result() is True
    assert not once.busy("k")
    assert once.start("k", take) is not first


async def test_a_call_cancelled_before_it_ran_is_forgotten() -> None:
    once: OnePerKey[bool] = OnePerKey()
    first = once.start("k", lambda: asyncio.sleep(0, True))
    first.cancel()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not once.busy("k")
