"""The soak's judge: one defined outcome per response, and `undefined` for anything else."""

from __future__ import annotations

import orjson
import pytest

from bench.soak import MIX, classify, gateway_config
from sluicegate.settings import Settings
from testsupport.fault_upstream import Fault


def event(payload: object) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    return event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


DONE = b"data: [DONE]\n\n"
ERROR = event({"error": {"message": "cut", "type": "upstream_error", "code": "upstream_error"}})


@pytest.mark.parametrize(
    ("status", "body", "stream", "outcome"),
    [
        (200, chunk("a ") + chunk("b ") + chunk(None, "stop") + DONE, True, "ok"),
        (200, b": keep-alive\n\n" + chunk("a ") + chunk("b ") + chunk(None, "stop") + DONE, True, "ok"),
        (200, chunk("a ") + ERROR + DONE, True, "stream_error:upstream_error"),
        (
            429,
            orjson.dumps({"error": {"message": "slow", "type": "rate_limit_error", "code": "x"}}),
            True,
            "http_error:429:x",
        ),
        (200, chunk("a ") + chunk("b ") + chunk(None, "stop"), True, "undefined:stream without [DONE]"),
        (200, chunk("a ") + b"data: {", True, "undefined:stream cut mid-event"),
        (200, chunk("a ") + chunk("b ") + DONE, True, "undefined:no finish reason"),
        (200, chunk("a ") + ERROR + chunk("b ") + DONE, True, "undefined:events after the error event"),
        (
            200,
            chunk("a ") + chunk(None, "stop") + ERROR + DONE,
            True,
            "undefined:an error event after a finish, or two",
        ),
        (200, chunk("x ") + chunk(None, "stop") + DONE, True, "undefined:wrong text"),
        (502, b"<html>bad gateway</html>", False, "undefined:status 502 without an OpenAI error body"),
        (
            200,
            orjson.dumps({"choices": [{"message": {"content": "a b "}, "finish_reason": "stop"}]}),
            False,
            "ok",
        ),
        (200, b"{}", False, "undefined:malformed answer"),
    ],
)
def test_outcomes(status: int, body: bytes, stream: bool, outcome: str) -> None:
    assert classify(status, body, stream, "a b ") == outcome


def test_the_mix_and_the_config_are_valid() -> None:
    for fault, _, weight, expected in MIX:
        Fault.parse(fault)
        assert weight > 0 and expected.split(":")[0] in {
            "ok",
            "http_error",
            "stream_error",
            "client_cancelled",
        }
    settings = Settings.model_validate(gateway_config("http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"))
    assert [d.name for d in settings.models[0].deployments] == ["flaky", "steady"]  # type: ignore[union-attr]
