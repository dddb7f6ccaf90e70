"""OpenAI chat messages -> Gemini `systemInstruction` and `contents`.

System and developer messages become the system instruction (Gemini has one, outside the
turns); user and tool messages are `user` turns, assistant messages `model` turns. Assistant
tool calls become `functionCall` parts with their arguments as an object, and tool results
`functionResponse` parts named after the call they answer (found by its id in the earlier
assistant messages); consecutive results form one turn, as Gemini wants one response per call
of the turn before.

Gemini 3 refuses a replayed function call without the thought signature it came with. The
signature travels to OpenAI clients as `extra_content.google.thought_signature` on the tool
call (as Google's own OpenAI-compatible endpoint sends it) and is put back from there; a client
that dropped it gets Google's documented `skip_thought_signature_validator` instead, so the
conversation goes on rather than failing with a 400.
"""

from __future__ import annotations

import base64
import mimetypes
import re
from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

import orjson

from sluicegate.errors import InvalidRequestError

SKIP_SIGNATURE = "skip_thought_signature_validator"
_DATA_URL = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),(.*)$", re.DOTALL)
_MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".heic": "image/heic",
    ".heif": "image/heif",
    ".gif": "image/gif",
    ".pdf": "application/pdf",
}
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mp3"}


def convert_messages(
    messages: list[dict[str, Any]], *, sentinel: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(systemInstruction or None, contents). `sentinel`: the model checks thought signatures."""
    system: list[dict[str, Any]] = []
    contents: list[dict[str, Any]] = []
    call_names: dict[str, str] = {}
    for i, message in enumerate(messages):
        param = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequestError(f"'{param}' must be an object.", param=param)
        role = message.get("role")
        if role in ("system", "developer"):
            system += _text_parts(message.get("content"), f"{param}.content")
        elif role == "user":
            parts = user_parts(message.get("content"), f"{param}.content")
            if parts:
                contents.append({"role": "user", "parts": parts})
        elif role == "assistant":
            parts = _assistant_parts(message, param, call_names, sentinel)
            if parts:
                contents.append({"role": "model", "parts": parts})
        elif role in ("tool", "function"):
            part = _function_response(message, param, call_names)
            previous = contents[-1] if contents else None
            if previous and previous["role"] == "user" and "functionResponse" in previous["parts"][-1]:
                previous["parts"].append(part)
            else:
                contents.append({"role": "user", "parts": [part]})
        else:
            raise InvalidRequestError(
                f"Gemini cannot take messages with role '{role}'.", param=f"{param}.role"
            )
    if not contents:
        raise InvalidRequestError(
            "Gemini needs at least one user or assistant message with content besides the system messages.",
            param="messages",
        )
    return ({"parts": system} if system else None), contents


def _text_parts(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise InvalidRequestError(f"'{param}' must be a string or a list of text parts.", param=param)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        text = part.get("text") if kind == "text" else part.get("refusal") if kind == "refusal" else None
        if not isinstance(text, str):
            raise InvalidRequestError(
                f"Only text parts are allowed in '{param}' for Gemini, not '{kind}'.", param=f"{param}[{j}]"
            )
        if text:
            parts.append({"text": text})
    return parts


def user_parts(content: Any, param: str) -> list[dict[str, Any]]:
    if content is None or isinstance(content, str):
        return _text_parts(content, param)
    if not isinstance(content, list):
        raise InvalidRequestError(f"'{param}' must be a string or a list of content parts.", param=param)
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        where = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            parts += _text_parts([part], param)
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequestError(
                    f"'{where}.image_url.url' must be a string.", param=f"{where}.image_url.url"
                )
            parts.append(media_part(url, f"{where}.image_url.url"))
        elif kind == "input_audio":
            parts.append(_audio_part(part.get("input_audio"), f"{where}.input_audio"))
        elif kind == "file":
            parts.append(_file_part(part.get("file"), f"{where}.file"))
        else:
            raise InvalidRequestError(
                f"Gemini cannot take content parts of type '{kind}'.", param=f"{where}.type"
            )
    return parts


def media_part(url: str, param: str) -> dict[str, Any]:
    """A data URL -> `inlineData`; an http(s) or gs:// URL -> `fileData` with its type guessed
    from the file name (Gemini fetches it and needs the type up front)."""
    match = _DATA_URL.match(url)
    if match is not None:
        mime, params, data = match.groups()
        if not mime:
            raise InvalidRequestError(f"The data URL in '{param}' does not say its media type.", param=param)
        if ";base64" not in params.lower():
            data = base64.b64encode(unquote_to_bytes(data)).decode()
        return {"inlineData": {"mimeType": mime.lower(), "data": "".join(data.split())}}
    scheme = url.split(":", 1)[0].lower()
    if scheme not in ("https", "http", "gs"):
        raise InvalidRequestError(
            f"'{param}' must be a data URL (data:image/png;base64,...) or an https URL.", param=param
        )
    path = urlsplit(url).path.lower()
    extension = path[path.rfind(".") :] if "." in path.rsplit("/", 1)[-1] else ""
    mime_type = _MIME_TYPES.get(extension) or mimetypes.guess_type(path)[0]
    if mime_type is None:
        raise InvalidRequestError(
            f"Gemini needs the type of the file at '{param}' before fetching it, and the URL's name does not"
            f" tell it (known endings: {', '.join(_MIME_TYPES)}). Send the image as a data URL"
            " (data:image/png;base64,...) instead.",
            param=param,
        )
    return {"fileData": {"mimeType": mime_type, "fileUri": url}}


def _audio_part(audio: Any, param: str) -> dict[str, Any]:
    data = audio.get("data") if isinstance(audio, dict) else None
    fmt = audio.get("format") if isinstance(audio, dict) else None
    if not isinstance(data, str) or fmt not in _AUDIO_TYPES:
        raise InvalidRequestError(f"'{param}' needs base64 'data' and a 'format' of wav or mp3.", param=param)
    return {"inlineData": {"mimeType": _AUDIO_TYPES[fmt], "data": data}}


def _file_part(file: Any, param: str) -> dict[str, Any]:
    data = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data, str) or not data.startswith("data:"):
        raise InvalidRequestError(
            f"'{param}' must carry the file as a data URL in 'file_data'; OpenAI file ids mean nothing to Gemini.",
            param=f"{param}.file_data",
        )
    return media_part(data, f"{param}.file_data")


def _assistant_parts(
    message: dict[str, Any], param: str, call_names: dict[str, str], sentinel: bool
) -> list[dict[str, Any]]:
    parts = _text_parts(message.get("content"), f"{param}.content")
    calls = message.get("tool_calls") or []
    if not isinstance(calls, list):
        raise InvalidRequestError(f"'{param}.tool_calls' must be a list.", param=f"{param}.tool_calls")
    signed = False
    first_call: dict[str, Any] | None = None
    for j, call in enumerate(calls):
        part = _function_call(call, f"{param}.tool_calls[{j}]", call_names)
        signed = signed or "thoughtSignature" in part
        first_call = first_call or part
        parts.append(part)
    if sentinel and first_call is not None and not signed:
        first_call["thoughtSignature"] = SKIP_SIGNATURE
    return parts


def _function_call(call: Any, param: str, call_names: dict[str, str]) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(
            f"'{param}.function.name' must be a non-empty string.", param=f"{param}.function.name"
        )
    assert isinstance(function, dict) and isinstance(call, dict)
    raw = function.get("arguments") or "{}"
    try:
        args = orjson.loads(raw) if isinstance(raw, str) else raw
    except orjson.JSONDecodeError:
        args = None
    if not isinstance(args, dict):
        raise InvalidRequestError(
            f"'{param}.function.arguments' must be a JSON object for Gemini.",
            param=f"{param}.function.arguments",
        )
    if isinstance(call.get("id"), str):
        call_names[call["id"]] = name
    part: dict[str, Any] = {"functionCall": {"name": name, "args": args}}
    extra = call.get("extra_content")
    google = extra.get("google") if isinstance(extra, dict) else None
    signature = google.get("thought_signature") if isinstance(google, dict) else None
    if isinstance(signature, str) and signature:
        part["thoughtSignature"] = signature
    return part


def _function_response(message: dict[str, Any], param: str, call_names: dict[str, str]) -> dict[str, Any]:
    call_id = message.get("tool_call_id")
    name = call_names.get(call_id) if isinstance(call_id, str) else None
    name = name or (message.get("name") if isinstance(message.get("name"), str) else None)
    if not name:
        raise InvalidRequestError(
            f"'{param}.tool_call_id' does not match a tool call of an earlier assistant message;"
            " Gemini needs the name of the function a result answers.",
            param=f"{param}.tool_call_id",
        )
    return {"functionResponse": {"name": name, "response": tool_result(message.get("content"))}}


def tool_result(content: Any) -> dict[str, Any]:
    """Gemini wants the result as a JSON object: a JSON object is sent as it is, anything else
    (other JSON, plain text) under `output`."""
    if isinstance(content, list):
        content = "".join(
            part["text"] for part in content if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    if not isinstance(content, str):
        return {"output": content}
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        return {"output": content}
    return value if isinstance(value, dict) else {"output": value}
