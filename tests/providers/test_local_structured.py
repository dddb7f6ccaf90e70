"""Structured outputs and the context on the embedded model, live: an answer that stops is JSON
its schema accepts on every seed, strings hold no raw control characters, and a prompt over
the context is the door's own 400 naming both numbers, without waiting for the model."""

from __future__ import annotations

import json
import re
from typing import Any

import anthropic
import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field

from tests.support.server import Gateway

SEEDS = range(24)


class Location(BaseModel):
    city: str = Field(max_length=24)
    country: str = Field(max_length=24)


class Person(BaseModel):
    name: str = Field(max_length=24)
    age: int = Field(ge=0, le=120)
    home: Location
    mood: str | None = Field(default=None, max_length=16)


FREE_TEXT: Any = {  # strings with no bound: where raw control characters used to get in
    "type": "object",
    "properties": {"title": {"type": "string"}, "lines": {"type": "array", "items": {"type": "string"}, "maxItems": 2}},
    "required": ["title", "lines"],
    "additionalProperties": False,
}


@pytest.fixture
def client(gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)


def structured(client: OpenAI, gateway: Gateway, schema: Any, seed: int, ask: str) -> tuple[str, str]:
    answer = client.chat.completions.create(
        model=gateway.model, seed=seed, max_tokens=100, temperature=1.0,
        messages=[{"role": "user", "content": ask}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}},
    )  # fmt: skip
    choice = answer.choices[0]
    return choice.message.content or "", choice.finish_reason


@pytest.mark.parametrize(
    "schema",
    [FREE_TEXT, to_strict_json_schema(Person)],
    ids=["free text", "nested pydantic"],
)
def test_an_answer_that_stops_is_json_its_schema_accepts_on_every_seed(
    client: OpenAI, gateway: Gateway, schema: Any
) -> None:
    stopped = 0
    for seed in SEEDS:
        text, finish = structured(client, gateway, schema, seed, "Describe a person, a poem or a list. Be creative.")
        assert not any(ord(c) < 0x20 and c not in "\n\t\r " for c in text), repr(text)
        if finish == "stop":
            stopped += 1
            jsonschema.validate(json.loads(text), schema)  # json.loads is strict: no raw control characters
        else:
            assert finish == "length"
    assert stopped >= len(SEEDS) // 2  # most answers fit in 100 tokens: the check above ran


def test_a_property_with_no_type_and_a_nested_ref_are_honoured_at_the_responses_door(
    client: OpenAI, gateway: Gateway
) -> None:
    schema: Any = {
        "$defs": {"Location": Location.model_json_schema()},
        "type": "object",
        "properties": {"where": {"$ref": "#/$defs/Location"}, "note": {"description": "anything at all"}},
        "required": ["where", "note"],
        "additionalProperties": False,
    }
    response = client.responses.create(
        model=gateway.model, input="Where is Paris?", temperature=0, max_output_tokens=60,
        text={"format": {"type": "json_schema", "name": "place", "schema": schema}},
    )  # fmt: skip
    if response.status == "completed":
        jsonschema.validate(json.loads(response.output_text), schema)
    else:
        assert response.status == "incomplete" and response.output_text.lstrip().startswith("{")


def test_a_prompt_over_the_context_is_a_400_naming_both_numbers_at_every_door(gateway: Gateway) -> None:
    """Refused while another request is generating: the check does not wait its turn."""
    long = "word " * 9000  # over SmolLM2's 8,192 trained tokens, the default context
    client = OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0)
    with client.chat.completions.create(
        model=gateway.model, messages=[{"role": "user", "content": "Count to a thousand."}], max_tokens=400, stream=True,
    ) as running:  # fmt: skip
        first = next(iter(running))
        assert first.choices
        with pytest.raises(openai.BadRequestError) as chat:
            client.chat.completions.create(model=gateway.model, messages=[{"role": "user", "content": long}], max_tokens=5)
        body = chat.value.body
        assert isinstance(body, dict) and body["code"] == "context_length_exceeded" and body["param"] == "messages"
        numbers = re.search(r"context length is (\d+) tokens\. However, your messages resulted in (\d+)", body["message"])
        assert numbers and int(numbers[1]) == 8192 and int(numbers[2]) > 8192  # the default: the trained length
        messages = anthropic.Anthropic(base_url=gateway.base_url, api_key=gateway.api_key, max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as door:
            messages.messages.create(model=gateway.model, max_tokens=5, messages=[{"role": "user", "content": long}])
        assert "8192" in str(door.value) and door.value.body["type"] == "error"  # type: ignore[index]
        with pytest.raises(openai.BadRequestError):
            client.responses.create(model=gateway.model, input=long, max_output_tokens=16)
        still = [chunk for chunk in running]  # the running answer was not disturbed
    assert still and still[-1].choices[0].finish_reason in ("stop", "length")


def test_seed_beyond_64_bits_is_a_400(gateway: Gateway) -> None:
    for seed in (2**63, -(2**63) - 1):
        response = httpx.post(
            gateway.v1 + "/chat/completions",
            headers={"Authorization": f"Bearer {gateway.api_key}"},
            json={"model": gateway.model, "messages": [{"role": "user", "content": "hi"}], "seed": seed},
        )
        assert response.status_code == 400 and response.json()["error"]["param"] == "seed"
    for seed in (2**63 - 1, -(2**63)):  # the ends of the range are honoured
        response = httpx.post(
            gateway.v1 + "/chat/completions",
            headers={"Authorization": f"Bearer {gateway.api_key}"},
            json={"model": gateway.model, "messages": [{"role": "user", "content": "hi"}], "seed": seed, "max_tokens": 2},
            timeout=120,
        )
        assert response.status_code == 200, response.text
