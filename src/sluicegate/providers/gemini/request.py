"""The canonical request -> a Gemini `generateContent` body.

Sampling and length go to `generationConfig` under Gemini's names; `response_format` becomes
JSON mode with a schema; `reasoning_effort` a thinking level (Gemini 3) or budget (2.x);
`tools` become `functionDeclarations` with their schemas rebuilt in Gemini's subset, and
`tool_choice` a function-calling mode. A parameter Gemini cannot honour is a 400 naming it,
never silently dropped.
"""

from __future__ import annotations

import re
from typing import Any

from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError
from sluicegate.providers.gemini.config import GeminiConfig
from sluicegate.providers.gemini.contents import convert_messages
from sluicegate.providers.gemini.schema import Unrepresentable, is_empty_object, to_gemini_schema

# Google's own mapping for its OpenAI-compatible endpoint: budgets for 2.x, levels for 3.x
_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576}
_LEVELS = {"none": "minimal", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
_PRO_LEVELS = {**_LEVELS, "none": "low", "minimal": "low"}  # Pro models cannot go below low
_VERSION = re.compile(r"gemini-(\d+)")
# OpenAI request fields that ask for something Gemini cannot do
_UNSUPPORTED = {
    "audio": "audio output",
    "prediction": "predicted outputs",
    "web_search_options": "OpenAI's web search",
}


def generation(model: str) -> int | None:
    """The Gemini generation a model name belongs to (`gemini-2.5-flash` -> 2), None if unnamed."""
    match = _VERSION.search(model.rsplit("/", 1)[-1])
    return int(match.group(1)) if match else None


def is_modern(model: str) -> bool:
    """Gemini 3 and later (and the `gemini-*-latest` aliases, which point there): thinking
    levels and checked thought signatures."""
    name = model.rsplit("/", 1)[-1]
    major = generation(name)
    return major >= 3 if major is not None else name.startswith("gemini-")


def gemini_body(request: ChatRequest, model: str, config: GeminiConfig) -> dict[str, Any]:
    native = request.native_body
    if native is not None:
        # the client spoke Gemini: its body as sent (the model is in the URL), nothing lost
        sent = {key: value for key, value in native.body.items() if key != "model"}
        if config.safety_settings and "safetySettings" not in sent:
            sent["safetySettings"] = config.safety_settings
        return sent
    _refuse_unsupported(request)
    system, contents = convert_messages(request.messages, sentinel=is_modern(model))
    body: dict[str, Any] = {"contents": contents}
    if system is not None:
        body["systemInstruction"] = system
    if request.tools:
        body["tools"] = [{"functionDeclarations": [_declaration(t, i) for i, t in enumerate(request.tools)]}]
    tool_config = _tool_config(request)
    if tool_config is not None:
        body["toolConfig"] = tool_config
    generation_config = _generation_config(request, model, config)
    if generation_config:
        body["generationConfig"] = generation_config
    if config.safety_settings:
        body["safetySettings"] = config.safety_settings
    return body


def _refuse_unsupported(request: ChatRequest) -> None:
    if request.logit_bias:
        raise InvalidRequestError("Gemini does not support 'logit_bias'.", param="logit_bias")
    if request.parallel_tool_calls is False:
        raise InvalidRequestError(
            "Gemini cannot be limited to one tool call per answer ('parallel_tool_calls': false).",
            param="parallel_tool_calls",
        )
    for field, what in _UNSUPPORTED.items():
        if request.raw.get(field) is not None:
            raise InvalidRequestError(f"Gemini does not support {what} ('{field}').", param=field)
    modalities = request.raw.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise InvalidRequestError("Gemini answers through sluicegate in text only.", param="modalities")


def _generation_config(request: ChatRequest, model: str, config: GeminiConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, name in (
        ("max_tokens", "maxOutputTokens"),
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        value = getattr(request, field)
        if value is not None:
            out[name] = value
    if request.stop:
        out["stopSequences"] = list(request.stop)
    if request.n != 1:
        out["candidateCount"] = request.n
    if request.logprobs:
        out["responseLogprobs"] = True
        if request.top_logprobs:
            out["logprobs"] = request.top_logprobs
    out.update(_response_format(request.response_format))
    thinking = _thinking(request, model, config)
    if thinking:
        out["thinkingConfig"] = thinking
    return out


def _response_format(response_format: dict[str, Any] | None) -> dict[str, Any]:
    if not response_format:
        return {}
    kind = response_format.get("type")
    if kind == "text":
        return {}
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind != "json_schema":
        raise InvalidRequestError(
            f"Gemini cannot take response_format of type '{kind}'.", param="response_format.type"
        )
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise InvalidRequestError(
            "'response_format.json_schema.schema' must be a JSON Schema object.",
            param="response_format.json_schema.schema",
        )
    try:
        return {"responseMimeType": "application/json", "responseSchema": to_gemini_schema(schema)}
    except Unrepresentable:
        return {"responseMimeType": "application/json", "responseJsonSchema": schema}


def _thinking(request: ChatRequest, model: str, config: GeminiConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    effort = request.reasoning_effort
    if request.thinking_budget is not None:
        out["thinkingBudget"] = request.thinking_budget
    elif effort is not None:
        if effort not in _BUDGETS:
            raise InvalidRequestError(
                f"'reasoning_effort' must be one of {', '.join(_BUDGETS)} for Gemini, not '{effort}'.",
                param="reasoning_effort",
            )
        if is_modern(model):
            levels = _PRO_LEVELS if "pro" in model.rsplit("/", 1)[-1] else _LEVELS
            out["thinkingLevel"] = levels[effort]
        else:
            out["thinkingBudget"] = _BUDGETS[effort]
    asked = request.thinking_budget not in (None, 0) or effort not in (None, "none")
    if asked or config.include_thoughts:
        out["includeThoughts"] = True
    return out


def _declaration(tool: Any, i: int) -> dict[str, Any]:
    param = f"tools[{i}]"
    if (
        not isinstance(tool, dict)
        or tool.get("type") != "function"
        or not isinstance(tool.get("function"), dict)
    ):
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise InvalidRequestError(f"Gemini takes function tools only, not '{kind}'.", param=f"{param}.type")
    function: dict[str, Any] = tool["function"]
    declaration: dict[str, Any] = {"name": function.get("name")}
    if isinstance(function.get("description"), str):
        declaration["description"] = function["description"]
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequestError(
            f"'{param}.function.parameters' must be a JSON Schema object.",
            param=f"{param}.function.parameters",
        )
    if parameters is None or is_empty_object(parameters):
        return declaration
    try:
        declaration["parameters"] = to_gemini_schema(parameters)
    except Unrepresentable:
        declaration["parametersJsonSchema"] = parameters
    return declaration


def _tool_config(request: ChatRequest) -> dict[str, Any] | None:
    choice = request.tool_choice
    if choice is None:
        return None
    if choice in ("auto", "none", "required"):
        if choice == "required" and not request.tools:
            raise InvalidRequestError(
                "'tool_choice' is 'required' but no tools were given.", param="tool_choice"
            )
        mode = {"auto": "AUTO", "none": "NONE", "required": "ANY"}[choice]
        return {"functionCallingConfig": {"mode": mode}} if request.tools else None
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not isinstance(choice, dict) or choice.get("type") != "function":
        raise InvalidRequestError(
            "'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"function\": {\"name\"}}.",
            param="tool_choice",
        )
    names = {t["function"].get("name") for t in request.tools or () if isinstance(t.get("function"), dict)}
    if name not in names:
        raise InvalidRequestError(
            f"'tool_choice' names '{name}', which is not among the tools.", param="tool_choice"
        )
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
