"""The canonical request -> an Anthropic Messages body.

A request carrying the client's Anthropic body (`native_body`) has it forwarded as sent, with
only the model swapped: thinking blocks and their signatures, `cache_control`, and
fields the gateway does not know reach the upstream untouched. A request in OpenAI's vocabulary
is translated field by field; an OpenAI parameter Anthropic cannot honour is a 400 naming it,
never silently dropped.
"""

from __future__ import annotations

from typing import Any

import orjson

from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError

DEFAULT_MAX_TOKENS = 4096
MIN_THINKING_BUDGET = 1024  # Anthropic's floor for `budget_tokens`
EFFORT_BUDGETS = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
COUNT_TOKENS_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "mcp_servers",
        "context_management",
        "cache_control",
    }
)  # what /v1/messages/count_tokens accepts; it rejects max_tokens, stream, temperature...
# OpenAI parameters with no Anthropic counterpart, found in the client's raw body
_UNSUPPORTED_RAW = ("audio", "prediction", "web_search_options", "functions", "function_call")


def messages_body(
    request: ChatRequest, upstream_model: str, stream: bool, default_max_tokens: int | None
) -> dict[str, Any]:
    """The body to POST to /v1/messages."""
    if request.native_body is not None:
        body = dict(request.native_body.body)
        if "max_tokens" not in body:
            body["max_tokens"] = request.max_tokens or default_max_tokens or DEFAULT_MAX_TOKENS
    else:
        body = translate(request, default_max_tokens)
        if request.continue_final:
            _prefill(body["messages"])
    body["model"] = upstream_model
    body["stream"] = stream
    return body


def _prefill(messages: list[dict[str, Any]]) -> None:
    """A trailing assistant turn to continue: Anthropic refuses one ending in whitespace, so
    its last text loses it (routing joins the continuation without doubling it), and an
    empty one goes."""
    if not messages or messages[-1]["role"] != "assistant":
        return
    blocks = messages[-1]["content"]
    if isinstance(blocks, str):
        blocks = [{"type": "text", "text": blocks}]
    if blocks and blocks[-1].get("type") == "text":
        blocks[-1] = {**blocks[-1], "text": str(blocks[-1].get("text") or "").rstrip()}
        if not blocks[-1]["text"]:
            blocks = blocks[:-1]
    if blocks:
        messages[-1] = {**messages[-1], "content": blocks}
    else:
        messages.pop()


def count_tokens_body(request: ChatRequest, upstream_model: str) -> dict[str, Any]:
    """The body to POST to /v1/messages/count_tokens: the prompt's fields only."""
    body = messages_body(request, upstream_model, False, None)
    return {key: value for key, value in body.items() if key in COUNT_TOKENS_FIELDS}


def translate(request: ChatRequest, default_max_tokens: int | None) -> dict[str, Any]:
    _reject_unsupported(request)
    system, messages = translate_messages(request.messages)
    body: dict[str, Any] = {
        "max_tokens": request.max_tokens or default_max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = system[0]["text"] if len(system) == 1 else system
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user:
        body["metadata"] = {"user_id": request.user}
    _tools(request, body)
    _thinking(request, body)
    _response_format(request.response_format, body)
    return body


def _reject_unsupported(request: ChatRequest) -> None:
    def refuse(param: str, why: str = "") -> None:
        raise InvalidRequestError(
            f"`{param}` is not supported by Anthropic models{': ' + why if why else ''}.",
            param=param,
            code="unsupported_parameter",
        )

    if request.n != 1:
        refuse("n", "they give one answer per request")
    if request.logprobs or request.top_logprobs is not None:
        refuse(
            "logprobs" if request.logprobs else "top_logprobs",
            "the Messages API returns no log-probabilities",
        )
    if request.logit_bias:
        refuse("logit_bias")
    if request.seed is not None:
        refuse("seed")
    if request.frequency_penalty:
        refuse("frequency_penalty")
    if request.presence_penalty:
        refuse("presence_penalty")
    if request.temperature is not None and request.temperature > 1:
        raise InvalidRequestError(
            "`temperature` must be between 0 and 1 for Anthropic models.",
            param="temperature",
            code="invalid_value",
        )
    for name in _UNSUPPORTED_RAW:
        if request.raw.get(name) is not None:
            refuse(name)
    modalities = request.raw.get("modalities")
    if modalities is not None and modalities != ["text"]:
        refuse("modalities", "they answer in text only")


def translate_messages(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI messages -> Anthropic `system` blocks and alternating turns. Consecutive turns of
    one role are merged (tool results first in theirs), as Anthropic needs results right after
    the assistant turn that called the tools."""
    system: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    for position, message in enumerate(messages):
        role = message.get("role")
        where = f"messages[{position}]"
        if role in ("system", "developer"):
            system.extend(_parts(message.get("content"), where, images=False))
            continue
        if role == "user":
            blocks = _parts(message.get("content"), where, images=True)
            _append(turns, "user", blocks)
        elif role == "assistant":
            _append(turns, "assistant", _assistant_blocks(message, where))
        elif role == "tool":
            _append(turns, "user", [_tool_result(message, where)])
        else:
            raise InvalidRequestError(
                f"Messages with role `{role}` are not supported by Anthropic models; use `tool` messages.",
                param=f"{where}.role",
                code="unsupported_value",
            )
    return system, turns


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    if not blocks:
        return  # Anthropic rejects empty turns
    if turns and turns[-1]["role"] == role:
        content = turns[-1]["content"]
        if blocks[0]["type"] == "tool_result":
            # results lead their turn: after earlier results, before any text
            at = next((i for i, block in enumerate(content) if block["type"] != "tool_result"), len(content))
            content[at:at] = blocks
        else:
            content.extend(blocks)
        return
    turns.append({"role": role, "content": blocks})


def _parts(content: Any, where: str, *, images: bool) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequestError(
            "Message content must be a string or a list of parts.", param=f"{where}.content"
        )
    blocks: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        param = f"{where}.content[{index}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            text = part.get(kind)
            if not isinstance(text, str):
                raise InvalidRequestError(f"The `{kind}` part has no text.", param=f"{param}.{kind}")
            if text:
                blocks.append({"type": "text", "text": text})
        elif kind == "image_url" and images:
            blocks.append(_image(part.get("image_url"), param))
        elif kind == "file" and images:
            blocks.append(_document(part.get("file"), param))
        else:
            raise InvalidRequestError(
                f"Content parts of type `{kind}` are not supported by Anthropic models here.",
                param=f"{param}.type",
                code="unsupported_value",
            )
    return blocks


def _data_url(url: str, param: str) -> tuple[str, str]:
    header, sep, data = url.partition(",")
    media_type, _, encoding = header[len("data:") :].partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise InvalidRequestError("A data URL must look like `data:<media type>;base64,<data>`.", param=param)
    return media_type, data


def _image(image: Any, param: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise InvalidRequestError("The image part has no URL.", param=f"{param}.image_url.url")
    if url.startswith("data:"):
        media_type, data = _data_url(url, f"{param}.image_url.url")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequestError(
        "An image URL must be an https URL or a base64 data URL.", param=f"{param}.image_url.url"
    )


def _document(file: Any, param: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str):
        raise InvalidRequestError(
            "Only files sent inline as `file_data` (a base64 data URL) reach Anthropic models.",
            param=f"{param}.file.file_data",
            code="unsupported_value",
        )
    media_type, payload = _data_url(data, f"{param}.file.file_data")
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": payload}}


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks = _parts(message.get("content"), where, images=False)
    for index, call in enumerate(message.get("tool_calls") or ()):
        param = f"{where}.tool_calls[{index}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequestError("A tool call needs a function name.", param=f"{param}.function.name")
        blocks.append(
            {
                "type": "tool_use",
                "id": str(call.get("id") or ""),
                "name": function["name"],
                "input": _arguments(function.get("arguments"), f"{param}.function.arguments"),
            }
        )
    return blocks


def _arguments(arguments: Any, param: str) -> dict[str, Any]:
    if arguments is None or arguments == "":
        return {}
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        parsed = None
    if not isinstance(parsed, dict):
        raise InvalidRequestError("Tool call arguments must be a JSON object.", param=param)
    return parsed


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise InvalidRequestError("A tool message needs its `tool_call_id`.", param=f"{where}.tool_call_id")
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        if content:
            result["content"] = content
    else:
        blocks = _parts(content, where, images=True)
        if blocks:
            result["content"] = blocks
    return result


def _tools(request: ChatRequest, body: dict[str, Any]) -> None:
    choice = request.tool_choice
    if request.tools:
        body["tools"] = [_tool(tool, index) for index, tool in enumerate(request.tools)]
    elif choice not in (None, "none", "auto"):
        raise InvalidRequestError("`tool_choice` needs `tools`.", param="tool_choice")
    if not request.tools:
        return
    anthropic_choice: dict[str, Any] | None
    if choice is None or choice == "auto":
        anthropic_choice = {"type": "auto"} if request.parallel_tool_calls is False else None
    elif choice == "none":
        anthropic_choice = {"type": "none"}
    elif choice == "required":
        anthropic_choice = {"type": "any"}
    elif isinstance(choice, dict) and isinstance((choice.get("function") or {}).get("name"), str):
        anthropic_choice = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequestError(
            "`tool_choice` must be `auto`, `none`, `required` or a named function.", param="tool_choice"
        )
    if anthropic_choice is not None:
        if request.parallel_tool_calls is False and anthropic_choice["type"] != "none":
            anthropic_choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = anthropic_choice


def _tool(tool: Any, index: int) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(function, dict):
        raise InvalidRequestError(
            "Only `function` tools reach Anthropic models.",
            param=f"tools[{index}].type",
            code="unsupported_value",
        )
    out: dict[str, Any] = {
        "name": function.get("name"),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    if function.get("strict") is True:
        out["strict"] = True
    return out


def _thinking(request: ChatRequest, body: dict[str, Any]) -> None:
    budget = request.thinking_budget
    effort = request.reasoning_effort
    if budget is None and effort is not None and effort != "none":
        budget = EFFORT_BUDGETS.get(effort)
        if budget is None:
            raise InvalidRequestError(
                f"`reasoning_effort` must be one of none, {', '.join(EFFORT_BUDGETS)}.",
                param="reasoning_effort",
                code="invalid_value",
            )
    if budget is None:
        return
    budget = max(budget, MIN_THINKING_BUDGET)
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}
    if body["max_tokens"] <= budget:
        # Anthropic wants max_tokens above the budget: the answer keeps the room it asked for
        body["max_tokens"] = budget + body["max_tokens"]


def _response_format(response_format: dict[str, Any] | None, body: dict[str, Any]) -> None:
    kind = (response_format or {}).get("type")
    if kind in (None, "text"):
        return
    schema = ((response_format or {}).get("json_schema") or {}).get("schema")
    if kind == "json_schema" and isinstance(schema, dict):
        body["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        return
    raise InvalidRequestError(
        "Anthropic models take `response_format` of type `json_schema` (with a schema) or `text`.",
        param="response_format.type",
        code="unsupported_value",
    )
