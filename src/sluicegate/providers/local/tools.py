"""Function calling on the embedded model: the tools described in the prompt, the calls held
to their schemas by a llama.cpp grammar.

A small model cannot be trusted to write a well-formed call, so it never has to: the calls are
generated under a grammar built from the tools' JSON schemas (`[{"name": ..., "arguments":
{...}}]`, SmolLM2's own tool-call format), which admits only the tools offered, each with
arguments its schema allows. Whether to call at all stays the model's choice under `auto`: it
writes freely, and an answer that opens with `<tool_call>` continues under the grammar. Under
`required` or a named function the answer starts in the grammar.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from sluicegate.core.request import ChatRequest
from sluicegate.errors import InvalidRequestError

OPEN = "<tool_call>"
CLOSE = "</tool_call>"
NO_ARGUMENTS: dict[str, Any] = {"type": "object", "properties": {}}


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """The tools the model may call, and whether it must call one."""

    tools: tuple[dict[str, Any], ...]  # {"name", "description", "parameters"}
    forced: bool
    parallel: bool = True

    def instructions(self) -> str:
        """What the system prompt says about the tools (SmolLM2's format, one call per item)."""
        listed = orjson.dumps(list(self.tools)).decode()
        how = "one or more calls" if self.parallel else "exactly one call"
        return (
            "You have access to the following tools:\n"
            f"<tools>{listed}</tools>\n\n"
            f"To call tools, answer with {how} and no other text, in this format:\n"
            f'{OPEN}[{{"name": "tool_name", "arguments": {{"argument": "value"}}}}]{CLOSE}\n'
            + ("" if self.forced else "If no tool is needed, answer in plain text.")
        )

    @property
    def names(self) -> list[str]:
        return [tool["name"] for tool in self.tools]


def plan_tools(request: ChatRequest) -> ToolPlan | None:
    """The plan for a request's `tools` and `tool_choice` (in OpenAI's chat vocabulary, which
    every door translates to), or None when the model is not to call any."""
    choice = request.tool_choice
    if not request.tools and choice not in (None, "none", "auto"):
        raise InvalidRequestError("'tool_choice' is only allowed when 'tools' are given.", param="tool_choice")
    if not request.tools or choice == "none":
        return None
    tools = [_tool(tool, i) for i, tool in enumerate(request.tools)]
    names = {tool["name"] for tool in tools}
    parallel = request.parallel_tool_calls is not False
    if choice in (None, "auto", "required"):
        return ToolPlan(tuple(tools), forced=choice == "required", parallel=parallel)
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = _name_of(choice)
        if name is None:
            raise InvalidRequestError(
                """'tool_choice' must name its function: {"type": "function", "function": {"name": ...}}.""",
                param="tool_choice",
            )
        if name not in names:
            raise InvalidRequestError(f"'tool_choice' names '{name}', which is not among the tools.", param="tool_choice")
        return ToolPlan(tuple(t for t in tools if t["name"] == name), forced=True, parallel=parallel)
    allowed = choice.get("allowed_tools") if isinstance(choice, dict) and choice.get("type") == "allowed_tools" else None
    if isinstance(allowed, dict) and isinstance(allowed.get("tools"), list):
        wanted = {_name_of(entry) for entry in allowed["tools"]}
        kept = tuple(t for t in tools if t["name"] in wanted)
        if not kept:
            raise InvalidRequestError("'tool_choice' allows none of the tools given.", param="tool_choice")
        return ToolPlan(kept, forced=allowed.get("mode") == "required", parallel=parallel)
    raise InvalidRequestError(
        "'tool_choice' must be 'auto', 'none', 'required', a function or allowed_tools.", param="tool_choice"
    )


def _name_of(entry: Any) -> str | None:
    """The function a choice names: `{"function": {"name"}}` (chat) or `{"name"}` (Responses)."""
    if not isinstance(entry, dict):
        return None
    function = entry.get("function")
    name = function.get("name") if isinstance(function, dict) else entry.get("name")
    return name if isinstance(name, str) else None


def _tool(tool: Any, i: int) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise InvalidRequestError(
            f"The embedded model takes function tools with a name, not '{kind}'.", param=f"tools[{i}]"
        )
    parameters = function.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequestError(
            f"'tools[{i}].function.parameters' must be a JSON Schema object.", param=f"tools[{i}].function.parameters"
        )
    out = {"name": function["name"], "parameters": _arguments(parameters)}
    if isinstance(function.get("description"), str):
        out["description"] = function["description"]
    return out


def _arguments(parameters: dict[str, Any] | None) -> dict[str, Any]:
    """A tool's arguments schema as the grammar holds it. One that declares no properties (no
    parameters, or a bare `{"type": "object"}`) takes `{}`: held to "any object", a small model
    fills it with whatever it likes and may never close it."""
    if parameters is None:
        return dict(NO_ARGUMENTS)
    open_ended = "properties" not in parameters and "patternProperties" not in parameters
    if parameters.get("type") == "object" and open_ended and not parameters.get("additionalProperties"):
        return {**parameters, "properties": {}}
    return parameters


def parse_calls(text: str) -> list[tuple[str, str]]:
    """(name, arguments as JSON text) of each call in a grammar-held answer."""
    calls = orjson.loads(text)
    return [(call["name"], orjson.dumps(call["arguments"]).decode()) for call in calls]


_NAME = re.compile(r'\s*\{\s*"name"\s*:\s*"((?:[^"\\]|\\.)*)(")?')
_ARGUMENTS = re.compile(r'"arguments"\s*:\s*')


def cut_calls(text: str, names: list[str]) -> list[tuple[str, str]]:
    """(name, arguments as far as written) of each call in a grammar-held answer that
    max_tokens cut: the whole calls, then the one being written. A forced call is never lost:
    a name cut short is the first offered tool it begins, and an answer cut before any name
    is a call of the first offered tool with no arguments yet."""
    calls: list[tuple[str, str]] = []
    for element in _elements(text):
        try:
            whole = orjson.loads(element)
            calls.append((whole["name"], orjson.dumps(whole["arguments"]).decode()))
            continue
        except (orjson.JSONDecodeError, KeyError, TypeError):
            pass
        named = _NAME.match(element)
        written = named.group(1) if named else ""
        if named and named.group(2) and written in names:
            name = written
        else:
            name = next((n for n in names if n.startswith(written)), names[0])
        arguments = _ARGUMENTS.search(element, named.end() if named else 0)
        calls.append((name, element[arguments.end() :].rstrip() if arguments else ""))
    return calls or [(names[0], "")]


def _elements(text: str) -> list[str]:
    """The items of a JSON array, as written so far (the last may be cut)."""
    start = text.find("[")
    if start < 0:
        return []
    items: list[str] = []
    depth, quoted, escaped, begun = 0, False, False, start + 1
    for at in range(start + 1, len(text)):
        character = text[at]
        if quoted:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                quoted = False
        elif character == '"':
            quoted = True
        elif character in "{[":
            depth += 1
        elif character in "}]":
            if depth == 0:  # the array's own end
                items.append(text[begun:at])
                return [item for item in items if item.strip()]
            depth -= 1
        elif character == "," and depth == 0:
            items.append(text[begun:at])
            begun = at + 1
    items.append(text[begun:])
    return [item for item in items if item.strip()]


def render_calls(tool_calls: list[dict[str, Any]]) -> str:
    """An earlier assistant turn's calls, as the model would have written them."""
    calls = []
    for call in tool_calls:
        function = call.get("function") or {}
        try:
            arguments = orjson.loads(function.get("arguments") or "{}")
        except orjson.JSONDecodeError:
            arguments = function.get("arguments")
        calls.append({"name": function.get("name"), "arguments": arguments})
    return OPEN + orjson.dumps(calls).decode() + CLOSE


def new_call_id() -> str:
    return "call_" + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


class Opening:
    """Watches a free answer for `<tool_call>`: text that may still become it is held back,
    the rest is released at once (leading white space waits to see what follows it)."""

    def __init__(self) -> None:
        self.held = ""
        self.released = False

    def feed(self, text: str) -> tuple[str, bool]:
        """(text to release now, whether the answer opened a tool call; then the text is what
        came before it)."""
        self.held += text
        at = self.held.find(OPEN)
        if at >= 0:
            before, self.held = self.held[:at], ""
            return (before if self.released or before.strip() else ""), True
        keep = next((n for n in range(min(len(OPEN) - 1, len(self.held)), 0, -1) if self.held.endswith(OPEN[:n])), 0)
        cut = len(self.held) - keep
        if not self.released and not self.held[:cut].strip():
            return "", False
        released, self.held = self.held[:cut], self.held[cut:]
        self.released = True
        return released, False

    def flush(self) -> str:
        released, self.held = self.held, ""
        return released
