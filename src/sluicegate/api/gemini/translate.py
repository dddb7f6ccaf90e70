"""A Gemini `generateContent` request -> the canonical request, in OpenAI's chat vocabulary.

The client's body stays whole in `raw` (source "gemini"), so a Gemini upstream gets it as sent
(safety settings, thought signatures, Google's own tools). The typed fields are what every
other provider reads: `systemInstruction` -> a system message; `user` turns -> user messages
(inline images as data URLs); `model` turns -> assistant messages, `functionCall` parts their
`tool_calls`; `functionResponse` parts -> `tool` messages answering the call they name;
`functionDeclarations` -> function tools with their schemas in JSON Schema's words;
`generationConfig` -> the sampling fields, `responseSchema` / `responseJsonSchema` -> a
`json_schema` response format.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError

# Gemini's thinking levels in OpenAI's words
_LEVELS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high"}
_MODES = {"AUTO": "auto", "VALIDATED": "auto", "NONE": "none", "ANY": "required"}


def parse_generate_request(body: Any, model: str, stream: bool) -> ChatRequest:
    """A `generateContent` body (or `countTokens`' `generateContentRequest`) -> the canonical
    request, or a 400 naming the field."""
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise InvalidRequestError(
            "* GenerateContentRequest.contents: contents is not specified", param="contents"
        )
    messages = _system(body.get("systemInstruction")) + _messages(contents)
    chat = ChatRequest(
        model=model,
        messages=messages,
        raw=body,
        wire_format="gemini_generate_content",
        param_names={"reasoning_effort": "generationConfig.thinkingConfig"},
        stream=stream,
        include_usage=True,
    )
    chat.tools = _tools(body.get("tools"))
    chat.tool_choice = _tool_choice(body.get("toolConfig"), chat.tools)
    _generation_config(body.get("generationConfig"), chat)
    return chat


def _system(instruction: Any) -> list[dict[str, Any]]:
    if instruction is None:
        return []
    if isinstance(instruction, str):
        return [{"role": "system", "content": instruction}] if instruction else []
    parts = instruction.get("parts") if isinstance(instruction, dict) else None
    if not isinstance(parts, list):
        raise InvalidRequestError(
            "'systemInstruction' must be a Content with parts.", param="systemInstruction"
        )
    text = "\n".join(
        part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)
    )
    return [{"role": "system", "content": text}] if text else []


def _messages(contents: list[Any]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    unanswered: list[dict[str, Any]] = []  # the last model turn's calls: {id, name}
    for i, content in enumerate(contents):
        param = f"contents[{i}]"
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            raise InvalidRequestError(f"'{param}.parts' must be a list of parts.", param=f"{param}.parts")
        role = content.get("role", "user")
        if role == "model":
            message, unanswered = _model_turn(parts, param)
            if message is not None:
                messages.append(message)
        elif role in ("user", "function", "tool"):
            messages.extend(_user_turn(parts, param, unanswered))
        else:
            raise InvalidRequestError(
                f"'{param}.role' must be 'user' or 'model', not '{role}'.", param=f"{param}.role"
            )
    return messages


def _model_turn(parts: list[Any], param: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        if not isinstance(part, dict) or part.get("thought") is True:
            continue  # thoughts: only a Gemini upstream reads them (from `raw`)
        call = part.get("functionCall")
        if isinstance(call, dict):
            name = call.get("name")
            if not isinstance(name, str) or not name:
                raise InvalidRequestError(
                    f"'{param}.parts[{j}].functionCall.name' is required.",
                    param=f"{param}.parts[{j}].functionCall.name",
                )
            args = call.get("args")
            tool_call: dict[str, Any] = {
                "id": call.get("id") if isinstance(call.get("id"), str) else "call_" + secrets.token_hex(12),
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": orjson.dumps(args if isinstance(args, dict) else {}).decode(),
                },
            }
            signature = part.get("thoughtSignature")
            if isinstance(signature, str) and signature:
                tool_call["extra_content"] = {"google": {"thought_signature": signature}}
            calls.append(tool_call)
        elif isinstance(part.get("text"), str):
            texts.append(part["text"])
    if not texts and not calls:
        return None, []
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message, [{"id": c["id"], "name": c["function"]["name"]} for c in calls]


def _user_turn(parts: list[Any], param: str, unanswered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function responses become `tool` messages (first, right after the calls they answer),
    the rest one user message."""
    tool_messages: list[dict[str, Any]] = []
    content: list[dict[str, Any]] = []
    for j, part in enumerate(parts):
        where = f"{param}.parts[{j}]"
        if not isinstance(part, dict):
            raise InvalidRequestError(f"'{where}' must be an object.", param=where)
        response = part.get("functionResponse")
        if isinstance(response, dict):
            tool_messages.append(_tool_message(response, where, unanswered))
        elif isinstance(part.get("text"), str):
            content.append({"type": "text", "text": part["text"]})
        elif isinstance(part.get("inlineData"), dict):
            content.append(_inline(part["inlineData"], where))
        elif isinstance(part.get("fileData"), dict):
            uri = part["fileData"].get("fileUri")
            if not isinstance(uri, str):
                raise InvalidRequestError(
                    f"'{where}.fileData.fileUri' is required.", param=f"{where}.fileData"
                )
            content.append({"type": "image_url", "image_url": {"url": uri}})
    if not content:
        return tool_messages
    if len(content) == 1 and content[0]["type"] == "text":
        return [*tool_messages, {"role": "user", "content": content[0]["text"]}]
    return [*tool_messages, {"role": "user", "content": content}]


def _tool_message(response: dict[str, Any], where: str, unanswered: list[dict[str, Any]]) -> dict[str, Any]:
    """Answers the call with its id, else the first unanswered call of that name."""
    name = response.get("name")
    call_id = response.get("id")
    match = next((c for c in unanswered if isinstance(call_id, str) and c["id"] == call_id), None)
    if match is None:
        match = next((c for c in unanswered if c["name"] == name), None)
    if match is None:
        raise InvalidRequestError(
            f"'{where}.functionResponse' answers '{name}', which the model turn before did not call.",
            param=f"{where}.functionResponse",
        )
    unanswered.remove(match)
    result = response.get("response")
    return {
        "role": "tool",
        "tool_call_id": match["id"],
        "content": orjson.dumps(result if result is not None else {}).decode(),
    }


def _inline(data: dict[str, Any], where: str) -> dict[str, Any]:
    mime, payload = data.get("mimeType"), data.get("data")
    if not isinstance(mime, str) or not isinstance(payload, str):
        raise InvalidRequestError(
            f"'{where}.inlineData' needs mimeType and data.", param=f"{where}.inlineData"
        )
    url = f"data:{mime};base64,{payload}"
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": url}}
    return {"type": "file", "file": {"filename": "document", "file_data": url}}


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    """Function declarations as OpenAI function tools; Google's own tools (search, code
    execution) run only at Google, which gets them from `raw`."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise InvalidRequestError("'tools' must be a list.", param="tools")
    functions: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        declarations = tool.get("functionDeclarations") if isinstance(tool, dict) else None
        if declarations is not None and not isinstance(declarations, list):
            raise InvalidRequestError(
                f"'tools[{i}].functionDeclarations' must be a list.", param=f"tools[{i}].functionDeclarations"
            )
        for j, declaration in enumerate(declarations or []):
            where = f"tools[{i}].functionDeclarations[{j}]"
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
                raise InvalidRequestError(f"'{where}.name' is required.", param=f"{where}.name")
            function: dict[str, Any] = {"name": declaration["name"]}
            if isinstance(declaration.get("description"), str):
                function["description"] = declaration["description"]
            if isinstance(declaration.get("parametersJsonSchema"), dict):
                function["parameters"] = declaration["parametersJsonSchema"]
            elif isinstance(declaration.get("parameters"), dict):
                function["parameters"] = json_schema(declaration["parameters"])
            else:
                function["parameters"] = {"type": "object", "properties": {}}
            functions.append({"type": "function", "function": function})
    return functions or None


def _tool_choice(config: Any, tools: list[dict[str, Any]] | None) -> Any:
    calling = config.get("functionCallingConfig") if isinstance(config, dict) else None
    if not isinstance(calling, dict) or not tools:
        return None
    mode = calling.get("mode", "AUTO")
    if not isinstance(mode, str) or mode not in _MODES:
        raise InvalidRequestError(
            f"'toolConfig.functionCallingConfig.mode' must be one of {', '.join(_MODES)}.",
            param="toolConfig.functionCallingConfig.mode",
        )
    allowed = calling.get("allowedFunctionNames")
    if allowed is not None:
        names = {tool["function"]["name"] for tool in tools}
        if not isinstance(allowed, list) or not all(
            isinstance(name, str) and name in names for name in allowed
        ):
            raise InvalidRequestError(
                "'toolConfig.functionCallingConfig.allowedFunctionNames' must name declared functions.",
                param="toolConfig.functionCallingConfig.allowedFunctionNames",
            )
    if mode == "ANY" and isinstance(allowed, list) and len(allowed) == 1:
        return {"type": "function", "function": {"name": allowed[0]}}
    return _MODES[mode]


def _generation_config(config: Any, chat: ChatRequest) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise InvalidRequestError("'generationConfig' must be an object.", param="generationConfig")
    for name, field in (
        ("temperature", "temperature"),
        ("topP", "top_p"),
        ("maxOutputTokens", "max_tokens"),
        ("seed", "seed"),
        ("presencePenalty", "presence_penalty"),
        ("frequencyPenalty", "frequency_penalty"),
    ):
        value = config.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidRequestError(
                    f"'generationConfig.{name}' must be a number.", param=f"generationConfig.{name}"
                )
            setattr(chat, field, int(value) if field in ("max_tokens", "seed") else value)
    stop = config.get("stopSequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequestError(
                "'generationConfig.stopSequences' must be a list of strings.",
                param="generationConfig.stopSequences",
            )
        chat.stop = list(stop)
    count = config.get("candidateCount")
    if count is not None:
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise InvalidRequestError(
                "'generationConfig.candidateCount' must be a positive integer.",
                param="generationConfig.candidateCount",
            )
        chat.n = count
    if config.get("responseLogprobs") is True:
        chat.logprobs = True
        if isinstance(config.get("logprobs"), int):
            chat.top_logprobs = config["logprobs"]
    chat.response_format = _response_format(config)
    thinking = config.get("thinkingConfig")
    if isinstance(thinking, dict):
        budget = thinking.get("thinkingBudget")
        level = thinking.get("thinkingLevel")
        if isinstance(budget, int) and budget > 0:
            chat.thinking_budget = budget
        elif isinstance(level, str) and level.lower() in _LEVELS:
            chat.reasoning_effort = _LEVELS[level.lower()]


def _response_format(config: dict[str, Any]) -> dict[str, Any] | None:
    schema = config.get("responseJsonSchema")
    if not isinstance(schema, dict) and isinstance(config.get("responseSchema"), dict):
        schema = json_schema(config["responseSchema"])
    if isinstance(schema, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    if config.get("responseMimeType") == "application/json":
        return {"type": "json_object"}
    return None


def json_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """Gemini's OpenAPI subset (`type: OBJECT`, `nullable`, `propertyOrdering`) as JSON Schema."""
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {
                name: json_schema(sub) if isinstance(sub, dict) else sub for name, sub in value.items()
            }
        elif key == "items" and isinstance(value, dict):
            out["items"] = json_schema(value)
        elif key == "anyOf" and isinstance(value, list):
            out["anyOf"] = [json_schema(sub) if isinstance(sub, dict) else sub for sub in value]
        elif key in ("nullable", "propertyOrdering"):
            continue
        elif key in (
            "minItems",
            "maxItems",
            "minLength",
            "maxLength",
            "minProperties",
            "maxProperties",
        ) and isinstance(value, str):
            out[key] = int(value) if value.isdigit() else value  # Google's int64 arrive as strings
        else:
            out[key] = value
    if schema.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out
