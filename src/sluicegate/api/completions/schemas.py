"""OpenAI's legacy completions request, validated into a `ChatRequest` that carries `prompts`
instead of messages (the embedded model continues them as plain text, with no chat template;
an OpenAI-compatible upstream gets the client's body as sent)."""

from __future__ import annotations

from typing import Any

from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError

DEFAULT_MAX_TOKENS = 16  # OpenAI's default for this endpoint
MAX_LOGPROBS = 5


def _invalid(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise _invalid(f"'{name}' must be a number from {low:g} to {high:g}; got {value!r}.", name)
    return float(value)


def _integer(body: dict[str, Any], name: str, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if type(value) is not int or not low <= value <= high:
        raise _invalid(f"'{name}' must be an integer from {low} to {high}; got {value!r}.", name)
    return value


def _prompts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    if isinstance(value, list) and value and all(type(item) is int or isinstance(item, list) for item in value):
        raise _invalid("'prompt' as token ids is not supported by this gateway: send the prompt as text.", "prompt")
    raise _invalid("'prompt' must be a string or a non-empty list of strings.", "prompt")


def _stop(value: Any) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and s for s in stops):
        raise _invalid("'stop' must be a string or a list of up to 4 non-empty strings.", "stop")
    return list(stops)


def parse_completion_request(body: Any) -> ChatRequest:
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("you must provide a model parameter", param="model", code="missing_required_parameter")
    if "prompt" not in body:
        raise InvalidRequestError("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    stream = body.get("stream") or False
    if not isinstance(stream, bool):
        raise _invalid("'stream' must be a boolean.", "stream")
    echo = body.get("echo") or False
    if not isinstance(echo, bool):
        raise _invalid("'echo' must be a boolean.", "echo")
    options = body.get("stream_options")
    if options is not None and (not isinstance(options, dict) or not stream):
        raise _invalid("'stream_options' is an object, and only allowed with 'stream': true.", "stream_options")
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise _invalid("'suffix' must be a string.", "suffix")
    bias = body.get("logit_bias")
    if bias is not None and not isinstance(bias, dict):
        raise _invalid("'logit_bias' must be an object of token ids to biases.", "logit_bias")
    logprobs = _integer(body, "logprobs", 0, MAX_LOGPROBS)
    max_tokens = _integer(body, "max_tokens", 0, 1 << 30)
    return ChatRequest(
        model=model,
        messages=[],
        raw=body,
        wire_format="openai_completions",
        stream=stream,
        include_usage=bool(options and options.get("include_usage")),
        max_tokens=DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens,
        temperature=_number(body, "temperature", 0, 2),
        top_p=_number(body, "top_p", 0, 1),
        frequency_penalty=_number(body, "frequency_penalty", -2, 2),
        presence_penalty=_number(body, "presence_penalty", -2, 2),
        stop=_stop(body.get("stop")),
        seed=_integer(body, "seed", -(1 << 63), (1 << 63) - 1),
        n=_integer(body, "n", 1, 128) or 1,
        logprobs=logprobs is not None,
        top_logprobs=logprobs,
        logit_bias=bias,
        user=body.get("user") if isinstance(body.get("user"), str) else None,
        prompts=_prompts(body["prompt"]),
        echo=echo,
    )
