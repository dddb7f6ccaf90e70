"""OpenAI chat requests -> Gemini `generateContent` bodies: every mapping, and a 400 naming the
parameter for what Gemini cannot honour."""

from __future__ import annotations

from typing import Any

import pytest

from sluicegate.api.chat_completions.schemas import parse_chat_request
from sluicegate.errors import InvalidRequestError
from sluicegate.providers.gemini.config import GeminiConfig
from sluicegate.providers.gemini.contents import SKIP_SIGNATURE
from sluicegate.providers.gemini.request import gemini_body, generation, is_modern

CONFIG = GeminiConfig(name="g", provider="gemini", api_key="k")
GEMINI_3 = "gemini-3-pro-preview"
GEMINI_25 = "gemini-2.5-flash"
USER = [{"role": "user", "content": "Hi"}]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}


def body(model: str = GEMINI_3, config: GeminiConfig = CONFIG, **fields: Any) -> dict[str, Any]:
    request = parse_chat_request({"model": "g", "messages": USER, **fields})
    return gemini_body(request, model, config)


def refused(param: str, **fields: Any) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        body(**fields)
    assert info.value.http_status == 400
    assert info.value.param == param, info.value.message
    return info.value


# messages -------------------------------------------------------------------------------------


def test_system_and_developer_messages_become_the_system_instruction() -> None:
    out = body(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello!"},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Weather?"}, {"type": "text", "text": " Now."}],
            },
        ]
    )
    assert out["systemInstruction"] == {"parts": [{"text": "Be brief."}, {"text": "Use metric units."}]}
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "Hi"}]},
        {"role": "model", "parts": [{"text": "Hello!"}]},
        {"role": "user", "parts": [{"text": "Weather?"}, {"text": " Now."}]},
    ]
    assert "generationConfig" not in out and "tools" not in out


def test_only_system_messages_is_a_400() -> None:
    refused("messages", messages=[{"role": "system", "content": "Be brief."}])


def test_an_image_data_url_becomes_inline_data() -> None:
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K\nGgo=", "detail": "low"}},
    ]
    out = body(messages=[{"role": "user", "content": content}])
    assert out["contents"][0]["parts"] == [
        {"text": "What is this?"},
        {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
    ]


def test_a_percent_encoded_data_url_is_base64_encoded() -> None:
    url = "data:image/svg+xml,%3Csvg%2F%3E"
    out = body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert out["contents"][0]["parts"] == [{"inlineData": {"mimeType": "image/svg+xml", "data": "PHN2Zy8+"}}]


@pytest.mark.parametrize(
    ("url", "mime"),
    [
        ("https://example.com/cat.JPG?size=large", "image/jpeg"),
        ("https://example.com/a/b.webp", "image/webp"),
        ("gs://bucket/scan.pdf", "application/pdf"),
        ("http://example.com/x.png#frag", "image/png"),
    ],
)
def test_an_image_url_becomes_file_data_with_its_type_guessed(url: str, mime: str) -> None:
    out = body(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}])
    assert out["contents"][0]["parts"] == [{"fileData": {"mimeType": mime, "fileUri": url}}]


def test_an_image_url_whose_type_cannot_be_told_is_a_clear_400() -> None:
    error = refused(
        "messages[0].content[0].image_url.url",
        messages=[
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "https://x.com/img?id=3"}}],
            }
        ],
    )
    assert "data URL" in error.message and ".png" in error.message


@pytest.mark.parametrize("url", ["ftp://x.com/a.png", "file:///etc/passwd", "data:;base64,AAAA"])
def test_other_image_urls_are_refused(url: str) -> None:
    refused(
        "messages[0].content[0].image_url.url",
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
    )


def test_audio_and_file_parts_become_inline_data() -> None:
    content = [
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]
    out = body(messages=[{"role": "user", "content": content}])
    assert out["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


def test_file_ids_and_unknown_parts_are_refused() -> None:
    refused(
        "messages[0].content[0].file.file_data",
        messages=[{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-abc"}}]}],
    )
    refused("messages[0].content[0].type", messages=[{"role": "user", "content": [{"type": "video_url"}]}])
    refused(
        "messages[0].content[0]",
        messages=[
            {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "data:x/y;base64,"}}]},
            *USER,
        ],
    )


# tool calls and results ---------------------------------------------------------------------------


def round_trip(signature: str | None, model: str = GEMINI_3, **call_extra: Any) -> dict[str, Any]:
    first: dict[str, Any] = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        **call_extra,
    }
    if signature is not None:
        first["extra_content"] = {"google": {"thought_signature": signature}}
    second = {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
    messages = [
        {"role": "user", "content": "Weather and time in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [first, second]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21, "sky": "clear"}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "14:05"},
        {"role": "user", "content": "Thanks"},
    ]
    return body(model=model, messages=messages, tools=[WEATHER])


def test_tool_calls_and_results_become_function_call_and_response_parts() -> None:
    out = round_trip("c2lnbmF0dXJl")
    assert out["contents"] == [
        {"role": "user", "parts": [{"text": "Weather and time in Paris?"}]},
        {
            "role": "model",
            "parts": [
                {
                    "functionCall": {"name": "get_weather", "args": {"city": "Paris"}},
                    "thoughtSignature": "c2lnbmF0dXJl",
                },
                {"functionCall": {"name": "get_time", "args": {}}},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temp": 21, "sky": "clear"}}},
                {"functionResponse": {"name": "get_time", "response": {"output": "14:05"}}},
            ],
        },
        {"role": "user", "parts": [{"text": "Thanks"}]},
    ]


def test_a_replayed_call_without_signature_gets_the_documented_bypass_on_gemini_3_only() -> None:
    parts = round_trip(None)["contents"][1]["parts"]
    assert parts[0]["thoughtSignature"] == SKIP_SIGNATURE
    assert "thoughtSignature" not in parts[1]
    legacy = round_trip(None, model=GEMINI_25)["contents"][1]["parts"]
    assert all("thoughtSignature" not in part for part in legacy)


@pytest.mark.parametrize(
    ("content", "response"),
    [
        ('{"a": 1}', {"a": 1}),
        ("[1, 2]", {"output": [1, 2]}),
        ("42", {"output": 42}),
        ("not json", {"output": "not json"}),
        ("", {"output": ""}),
        ([{"type": "text", "text": '{"b"'}, {"type": "text", "text": ": 2}"}], {"b": 2}),
    ],
)
def test_tool_results_are_sent_as_objects(content: Any, response: dict[str, Any]) -> None:
    messages = [
        *USER,
        {
            "role": "assistant",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": content},
    ]
    out = body(messages=messages)
    assert out["contents"][2]["parts"] == [{"functionResponse": {"name": "f", "response": response}}]


def test_a_tool_result_for_an_unknown_call_is_a_400() -> None:
    refused(
        "messages[1].tool_call_id", messages=[*USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]
    )


def test_tool_call_arguments_that_are_not_a_json_object_are_a_400() -> None:
    for arguments in ("[1]", "{broken"):
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
        refused(
            "messages[1].tool_calls[0].function.arguments",
            messages=[*USER, {"role": "assistant", "tool_calls": [call]}],
        )


# tools and tool choice ---------------------------------------------------------------------------------


def test_tools_become_function_declarations_with_cleaned_schemas() -> None:
    no_args = {
        "type": "function",
        "function": {"name": "now", "parameters": {"type": "object", "properties": {}}},
    }
    free = {
        "type": "function",
        "function": {
            "name": "tag",
            "parameters": {"type": "object", "properties": {"labels": {"type": "object"}}},
        },
    }
    out = body(tools=[WEATHER, no_args, free])
    assert out["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather in a city",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                },
                {"name": "now"},
                # a free-form object Gemini's subset cannot say: the JSON Schema field instead
                {"name": "tag", "parametersJsonSchema": free["function"]["parameters"]},  # type: ignore[index]
            ]
        }
    ]


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["get_weather"]},
        ),
    ],
)
def test_tool_choice_becomes_a_function_calling_mode(choice: Any, config: dict[str, Any]) -> None:
    assert body(tools=[WEATHER], tool_choice=choice)["toolConfig"] == {"functionCallingConfig": config}


def test_tool_choice_mistakes_are_400s() -> None:
    refused("tool_choice", tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "other"}})
    refused("tool_choice", tools=[WEATHER], tool_choice="sometimes")
    refused("tool_choice", tool_choice="required")
    assert "toolConfig" not in body(tool_choice="none")


def test_non_function_tools_are_refused() -> None:
    refused("tools[0].type", tools=[{"type": "custom", "custom": {"name": "x"}}])


# generation config ------------------------------------------------------------------------------------


def test_sampling_and_length_fields_map_to_generation_config() -> None:
    out = body(
        max_completion_tokens=300,
        temperature=0.4,
        top_p=0.9,
        stop=["END", "STOP"],
        n=2,
        seed=7,
        presence_penalty=0.5,
        frequency_penalty=-0.5,
    )
    assert out["generationConfig"] == {
        "maxOutputTokens": 300,
        "temperature": 0.4,
        "topP": 0.9,
        "seed": 7,
        "presencePenalty": 0.5,
        "frequencyPenalty": -0.5,
        "stopSequences": ["END", "STOP"],
        "candidateCount": 2,
    }
    assert body(stop="END")["generationConfig"] == {"stopSequences": ["END"]}
    assert body(max_tokens=12)["generationConfig"] == {"maxOutputTokens": 12}


def test_response_formats() -> None:
    assert "generationConfig" not in body(response_format={"type": "text"})
    assert body(response_format={"type": "json_object"})["generationConfig"] == {
        "responseMimeType": "application/json"
    }
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}},
        "additionalProperties": False,
        "required": ["n"],
    }
    out = body(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "x", "schema": schema, "strict": True},
        }
    )
    assert out["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseSchema": {"type": "OBJECT", "properties": {"n": {"type": "INTEGER"}}, "required": ["n"]},
    }
    recursive = {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#"}}}}
    out = body(response_format={"type": "json_schema", "json_schema": {"name": "tree", "schema": recursive}})
    assert out["generationConfig"] == {
        "responseMimeType": "application/json",
        "responseJsonSchema": recursive,
    }
    refused(
        "response_format.json_schema.schema",
        response_format={"type": "json_schema", "json_schema": {"name": "x"}},
    )
    refused("response_format.type", response_format={"type": "xml"})


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        (GEMINI_25, "none", {"thinkingBudget": 0}),
        (GEMINI_25, "low", {"thinkingBudget": 1024, "includeThoughts": True}),
        (GEMINI_25, "medium", {"thinkingBudget": 8192, "includeThoughts": True}),
        (GEMINI_25, "high", {"thinkingBudget": 24576, "includeThoughts": True}),
        ("gemini-3-flash-preview", "minimal", {"thinkingLevel": "minimal", "includeThoughts": True}),
        ("gemini-3-flash-preview", "none", {"thinkingLevel": "minimal"}),
        (GEMINI_3, "minimal", {"thinkingLevel": "low", "includeThoughts": True}),
        (GEMINI_3, "high", {"thinkingLevel": "high", "includeThoughts": True}),
        ("gemini-flash-latest", "medium", {"thinkingLevel": "medium", "includeThoughts": True}),
    ],
)
def test_reasoning_effort_becomes_a_thinking_config(
    model: str, effort: str, thinking: dict[str, Any]
) -> None:
    assert body(model=model, reasoning_effort=effort)["generationConfig"] == {"thinkingConfig": thinking}


def test_unknown_reasoning_effort_is_a_400_and_include_thoughts_can_be_configured() -> None:
    refused("reasoning_effort", reasoning_effort="extreme")
    config = GeminiConfig(name="g", provider="gemini", include_thoughts=True)
    assert body(config=config)["generationConfig"] == {"thinkingConfig": {"includeThoughts": True}}


def test_logprobs_ask_gemini_for_them() -> None:
    assert body(logprobs=True, top_logprobs=3)["generationConfig"] == {
        "responseLogprobs": True,
        "logprobs": 3,
    }


@pytest.mark.parametrize(
    ("param", "fields"),
    [
        ("logit_bias", {"logit_bias": {"50256": -100}}),
        ("parallel_tool_calls", {"tools": [WEATHER], "parallel_tool_calls": False}),
        ("audio", {"audio": {"voice": "alloy", "format": "wav"}}),
        ("modalities", {"modalities": ["text", "audio"]}),
        ("prediction", {"prediction": {"type": "content", "content": "x"}}),
        ("web_search_options", {"web_search_options": {}}),
    ],
)
def test_what_gemini_cannot_honour_is_a_400_naming_it(param: str, fields: dict[str, Any]) -> None:
    refused(param, **fields)


def test_safety_settings_from_the_config_are_sent() -> None:
    settings = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    config = GeminiConfig(name="g", provider="gemini", safety_settings=settings)
    assert body(config=config)["safetySettings"] == settings


def test_model_generations() -> None:
    assert [generation(m) for m in ("gemini-2.5-flash", "models/gemini-3-pro-preview", "gemma-3-27b-it")] == [
        2,
        3,
        None,
    ]
    assert [
        is_modern(m) for m in ("gemini-2.0-flash", "gemini-3.1-pro", "gemini-pro-latest", "gemma-3-27b")
    ] == [
        False,
        True,
        True,
        False,
    ]
