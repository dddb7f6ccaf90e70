"""Two gateway processes on one PostgreSQL + Redis enforce one rate limit and one budget."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.governance.conftest import Backend
from tests.governance.support import FREE, HI, PRICED, GovGateway, gateway_config, start
from tests.support.openai_upstream import OpenAIUpstream


@pytest.fixture
def replicas(pg_backend: Backend, tmp_path: Path, upstream: OpenAIUpstream) -> Iterator[list[GovGateway]]:
    config = gateway_config(upstream, pg_backend)
    first = start(tmp_path / "one", config)
    try:
        second = start(tmp_path / "two", config, admin_key=first.admin_key)
        assert "admin key:" not in second.gateway.log()  # made and printed once, by the first
        try:
            yield [first, second]
        finally:
            second.stop()
    finally:
        first.stop()


def _send(gateways: list[GovGateway], secret: str, count: int, **extra: object) -> list[tuple[int, int]]:
    """(replica, status) of `count` requests sent to the replicas in turn."""
    sdks = [openai.OpenAI(api_key=secret, base_url=g.v1, max_retries=0, timeout=30) for g in gateways]
    out = []
    for i in range(count):
        replica = i % len(sdks)
        try:
            sdks[replica].chat.completions.create(messages=HI, **extra)  # type: ignore[call-overload]
            out.append((replica, 200))
        except openai.APIStatusError as exc:
            out.append((replica, exc.status_code))
    return out


def test_two_replicas_share_one_requests_per_minute_limit(replicas: list[GovGateway]) -> None:
    _, secret = replicas[0].new_key(rpm=6)
    results = _send(replicas, secret, 16, model=FREE)
    admitted = [replica for replica, status in results if status == 200]
    assert len(admitted) == 6  # not 6 per replica
    assert set(admitted) == {0, 1}
    assert {status for _, status in results} == {200, 429}


def test_two_replicas_share_one_budget_and_one_ledger(replicas: list[GovGateway]) -> None:
    key_id, secret = replicas[0].new_key(budget_usd=4)
    results = _send(replicas, secret, 10, model=PRICED, max_tokens=1)
    admitted = [replica for replica, status in results if status == 200]
    assert len(admitted) == 4
    assert set(admitted) == {0, 1}
    rows = replicas[1].rows(key_id, 10)
    assert len(rows) == 10
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(4.0)
    assert replicas[0].key(key_id)["spent_usd"] == pytest.approx(4.0)


def test_a_response_stored_through_one_replica_is_read_and_continued_through_the_other(
    replicas: list[GovGateway],
) -> None:
    """Stored responses live in the configured database (PostgreSQL here), not in a SQLite file
    of each gateway's own."""
    _, secret = replicas[0].new_key()
    one, two = (openai.OpenAI(api_key=secret, base_url=g.v1, max_retries=0, timeout=30) for g in replicas)
    first = one.responses.create(model=FREE, input="hi")
    assert two.responses.retrieve(first.id).output_text == first.output_text
    second = two.responses.create(model=FREE, input="and then?", previous_response_id=first.id)
    assert second.status == "completed"
    assert [item.id for item in one.responses.input_items.list(second.id)]
    two.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        one.responses.retrieve(first.id)
    _, stranger = replicas[0].new_key()
    with pytest.raises(openai.NotFoundError):  # another key's response is as good as absent
        openai.OpenAI(api_key=stranger, base_url=replicas[1].v1, max_retries=0).responses.retrieve(second.id)
