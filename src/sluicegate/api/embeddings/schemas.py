"""OpenAI's embeddings request, validated into an `EmbeddingRequest`: `input` as a string, a
list of strings, a list of token ids or a list of such lists, as the API takes it."""

from __future__ import annotations

from typing import Any

from sluicegate.core.embeddings import EmbeddingRequest, Inputs
from sluicegate.errors import InvalidRequestError

MAX_INPUTS = 2048  # OpenAI's limit on the items of one request
ENCODINGS = ("float", "base64")


def _invalid(message: str, param: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="invalid_value")


def _token_ids(value: list[Any], param: str) -> list[int]:
    if not value:
        raise _invalid(f"'{param}' is an empty list of token ids.", param)
    for item in value:
        if type(item) is not int or item < 0:
            raise _invalid(f"'{param}' must be a list of non-negative integer token ids; got {item!r}.", param)
    return value


def parse_inputs(value: Any) -> Inputs:
    if isinstance(value, str):
        if not value:
            raise _invalid("'input' cannot be an empty string.", "input")
        return [value]
    if not isinstance(value, list) or not value:
        raise _invalid("'input' must be a string, a list of strings, or token ids; it is empty or missing.", "input")
    if len(value) > MAX_INPUTS:
        raise _invalid(f"'input' has {len(value)} items; at most {MAX_INPUTS} are allowed.", "input")
    first = value[0]
    if isinstance(first, str):
        for index, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise _invalid(f"'input[{index}]' must be a non-empty string, as the other items are.", "input")
        return list(value)
    if type(first) is int:
        return [_token_ids(value, "input")]
    if isinstance(first, list):
        batch: list[list[int]] = []
        for index, item in enumerate(value):
            if not isinstance(item, list):
                raise _invalid(f"'input[{index}]' must be a list of token ids, as the other items are.", "input")
            batch.append(_token_ids(item, f"input[{index}]"))
        return batch
    raise _invalid("'input' must be a string, a list of strings, or token ids.", "input")


def parse_embedding_request(body: Any) -> EmbeddingRequest:
    if not isinstance(body, dict):
        raise InvalidRequestError("The request body must be a JSON object.", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("you must provide a model parameter", param="model", code="missing_required_parameter")
    if "input" not in body:
        raise InvalidRequestError("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    encoding = body.get("encoding_format")
    if encoding is None:
        encoding = "float"
    if encoding not in ENCODINGS:
        raise _invalid(f"'encoding_format' must be 'float' or 'base64'; got {encoding!r}.", "encoding_format")
    dimensions = body.get("dimensions")
    if dimensions is not None and (type(dimensions) is not int or dimensions < 1):
        raise _invalid(f"'dimensions' must be a positive integer; got {dimensions!r}.", "dimensions")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise _invalid("'user' must be a string.", "user")
    return EmbeddingRequest(
        model=model,
        inputs=parse_inputs(body["input"]),
        raw=body,
        encoding_format=encoding,
        dimensions=dimensions,
        user=user,
    )
