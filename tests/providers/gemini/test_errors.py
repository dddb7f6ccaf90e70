"""Google's error bodies -> OpenAI-shaped gateway errors with the status a client can act on."""

from __future__ import annotations

import pytest

from sluicegate.errors import (
    InvalidRequestError,
    ModelNotFoundError,
    RateLimitError,
    ServiceUnavailableError,
    UpstreamConfigError,
    UpstreamError,
    UpstreamTimeoutError,
)
from sluicegate.providers.gemini.errors import upstream_error
from tests.support.gemini_upstream import error_body

KEY_INVALID = [
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
    }
]
RETRY_INFO = [
    {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{"quotaMetric": "x"}]},
    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"},
]


def test_invalid_argument_is_the_clients_400_with_googles_message() -> None:
    body = error_body(400, "* GenerateContentRequest.contents: contents is not specified", "INVALID_ARGUMENT")
    error = upstream_error(400, body, {}, "gem")
    assert isinstance(error, InvalidRequestError) and error.http_status == 400
    assert error.code == "invalid_argument"
    assert "contents is not specified" in error.message and error.message.startswith("Gemini answered 400")


def test_a_refused_key_is_the_gateways_problem_even_as_a_400() -> None:
    body = error_body(400, "API key not valid. Please pass a valid API key.", "INVALID_ARGUMENT", KEY_INVALID)
    error = upstream_error(400, body, {}, "gem")
    assert type(error) is UpstreamConfigError and error.http_status == 502
    assert "credentials" in error.message


@pytest.mark.parametrize(("status", "word"), [(401, "UNAUTHENTICATED"), (403, "PERMISSION_DENIED")])
def test_401_and_403_are_502s(status: int, word: str) -> None:
    error = upstream_error(status, error_body(status, "denied", word), {}, "gem")
    assert error.http_status == 502 and "`gem`" in error.message


def test_404_names_the_model_entry_to_fix() -> None:
    body = error_body(404, "models/gemini-9 is not found for API version v1beta", "NOT_FOUND")
    error = upstream_error(404, body, {}, "gem")
    assert error.http_status == 502
    assert "models/gemini-9 is not found" in error.message and "model entry `gem`" in error.message


def test_404_behind_a_wildcard_entry_is_the_clients_unknown_model() -> None:
    body = error_body(404, "models/gemini-9 is not found for API version v1beta", "NOT_FOUND")
    error = upstream_error(404, body, {}, "gemini/*", wildcard=True)
    assert isinstance(error, ModelNotFoundError) and error.http_status == 404 and error.param == "model"


def test_429_waits_as_the_header_says_or_as_retry_info_says() -> None:
    body = error_body(
        429, "Resource has been exhausted (e.g. check quota).", "RESOURCE_EXHAUSTED", RETRY_INFO
    )
    from_details = upstream_error(429, body, {}, "gem")
    assert isinstance(from_details, RateLimitError) and from_details.retry_after == 37.0
    assert from_details.headers() == {"retry-after": "37"}
    from_header = upstream_error(429, body, {"retry-after": "5"}, "gem")
    assert from_header.retry_after == 5.0
    bare = upstream_error(429, error_body(429, "slow down", "RESOURCE_EXHAUSTED"), {}, "gem")
    assert bare.retry_after is None and bare.headers() == {}  # no wait the upstream did not give


def test_5xx() -> None:
    unavailable = upstream_error(503, error_body(503, "The model is overloaded.", "UNAVAILABLE"), {}, "gem")
    assert isinstance(unavailable, ServiceUnavailableError) and unavailable.http_status == 503
    assert unavailable.retry_after is None  # Google gave no wait: none is promised
    internal = upstream_error(500, error_body(500, "An internal error has occurred.", "INTERNAL"), {}, "gem")
    assert type(internal) is UpstreamError and internal.http_status == 502
    # a 5xx is told in the gateway's words (entry and status); Google's text goes to the log
    assert "`gem`" in internal.message and "500" in internal.message
    assert "An internal error has occurred." not in internal.message
    timeout = upstream_error(504, error_body(504, "Deadline expired", "DEADLINE_EXCEEDED"), {}, "gem")
    assert isinstance(timeout, UpstreamTimeoutError) and timeout.http_status == 504


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'[{"error": {"code": 400, "message": "in a list", "status": "INVALID_ARGUMENT"}}]', "in a list"),
        (b"<html>Bad Request</html>", "no details"),  # markup stays in the log
        (b"Bad Request: no contents", "Bad Request: no contents"),
        (b"", "no details"),
        (b'{"error": "plain"}', "plain"),
    ],
)
def test_error_bodies_of_every_shape(body: bytes, message: str) -> None:
    error = upstream_error(400, body, {}, "gem")
    assert error.http_status == 400 and message in error.message
    assert error.to_dict()["error"]["type"] == "invalid_request_error"
