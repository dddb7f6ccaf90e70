"""Type checks for a Responses body, with OpenAI's wording and the offending `param`.

Hand-written rather than a pydantic model: the input items are a wide union whose errors must
name the exact item and field (`input[2].content[0].image_url`), and each check is one line.
"""

from __future__ import annotations

from typing import Any

from sluicegate.errors import InvalidRequestError


def _got(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def invalid_type(param: str, expected: str, value: Any) -> InvalidRequestError:
    return InvalidRequestError(
        f"Invalid type for '{param}': expected {expected}, but got {_got(value)} instead.",
        param=param,
        code="invalid_type",
    )


def invalid_value(param: str, message: str, code: str = "invalid_value") -> InvalidRequestError:
    return InvalidRequestError(f"Invalid value for '{param}': {message}", param=param, code=code)


def missing(param: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter"
    )


def unsupported(param: str, message: str) -> InvalidRequestError:
    return InvalidRequestError(message, param=param, code="unsupported_parameter")


def optional_str(body: dict[str, Any], name: str, param: str | None = None) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise invalid_type(param or name, "a string", value)
    return value


def required_str(body: dict[str, Any], name: str, param: str | None = None) -> str:
    if body.get(name) is None:
        raise missing(param or name)
    value = optional_str(body, name, param)
    assert value is not None
    return value


def optional_bool(body: dict[str, Any], name: str) -> bool | None:
    value = body.get(name)
    if value is not None and not isinstance(value, bool):
        raise invalid_type(name, "a boolean", value)
    return value


def optional_int(body: dict[str, Any], name: str, low: int, high: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid_type(name, "an integer", value)
    if value < low:
        raise invalid_value(name, f"integer below minimum value. Expected a value >= {low}, but got {value}.")
    if high is not None and value > high:
        raise invalid_value(
            name, f"integer above maximum value. Expected a value <= {high}, but got {value}."
        )
    return value


def optional_number(body: dict[str, Any], name: str, low: float, high: float) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_type(name, "a decimal", value)
    if not low <= value <= high:
        raise invalid_value(name, f"expected a value between {low:g} and {high:g}, but got {value}.")
    return float(value)


def optional_dict(body: dict[str, Any], name: str, param: str | None = None) -> dict[str, Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, dict):
        raise invalid_type(param or name, "an object", value)
    return value


def optional_list(body: dict[str, Any], name: str, param: str | None = None) -> list[Any] | None:
    value = body.get(name)
    if value is not None and not isinstance(value, list):
        raise invalid_type(param or name, "an array", value)
    return value


def one_of(body: dict[str, Any], name: str, choices: tuple[str, ...], param: str | None = None) -> str | None:
    value = optional_str(body, name, param)
    if value is not None and value not in choices:
        options = ", ".join(f"'{choice}'" for choice in choices)
        raise invalid_value(param or name, f"'{value}'. Supported values are: {options}.")
    return value
