"""The Responses door's `tools`: function tools, `namespace` groups of them, and hosted tools.

A `namespace` (OpenAI's grouping of client-run function tools, as Codex sends its sub-agent
tools) is offered to the model as plain functions named `<namespace>__<name>`; the calls come
back split again, `name` and `namespace` as OpenAI returns them. Hosted tools (web search, file
search, code interpreter...) are OpenAI's own services, which no upstream behind the gateway
runs: they are noted here, and the door leaves them out or refuses them as the model entry says.
Client-run tools with item types of their own (`custom`, `shell`, `computer`...) stay a 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sluicegate.api.responses.checks import (
    invalid_type,
    invalid_value,
    optional_dict,
    optional_list,
    optional_str,
    required_str,
    unsupported,
)

# Tools OpenAI runs on its own servers; a model behind the gateway cannot call them.
HOSTED_TOOLS = frozenset(
    {
        "web_search",
        "web_search_2025_08_26",
        "web_search_preview",
        "web_search_preview_2025_03_11",
        "file_search",
        "code_interpreter",
        "image_generation",
        "mcp",
        "tool_search",
        "programmatic_tool_calling",
    }
)
NAMESPACE_SEPARATOR = "__"


def flat_name(namespace: str | None, name: str) -> str:
    """The function name a namespaced tool is offered under (the same for replayed calls)."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


@dataclass(slots=True)
class ToolSet:
    echoed: list[dict[str, Any]] = field(default_factory=list)  # as the response object shows them
    chat: list[dict[str, Any]] = field(default_factory=list)  # OpenAI chat function tools
    namespaced: dict[str, tuple[str, str]] = field(default_factory=dict)  # flat name -> (namespace, name)
    hosted: list[tuple[str, str]] = field(default_factory=list)  # (param, type) of hosted tools


def parse_tools(body: dict[str, Any]) -> ToolSet:
    tools = ToolSet()
    for index, tool in enumerate(optional_list(body, "tools") or []):
        param = f"tools[{index}]"
        if not isinstance(tool, dict):
            raise invalid_type(param, "an object", tool)
        kind = required_str(tool, "type", f"{param}.type")
        if kind == "function":
            echoed, chat = _function(tool, param, None)
            tools.echoed.append(echoed)
            tools.chat.append(chat)
        elif kind == "namespace":
            _namespace(tool, param, tools)
        elif kind in HOSTED_TOOLS:
            tools.hosted.append((f"{param}.type", kind))
        else:
            raise unsupported(
                f"{param}.type",
                f"The tool type '{kind}' is not supported: sluicegate runs no built-in tools (web search,"
                " file search, code interpreter, computer use, MCP...). Only 'function' tools are,"
                " alone or grouped in a 'namespace'.",
            )
    names = [chat["function"]["name"] for chat in tools.chat]
    repeated = next((name for name in names if names.count(name) > 1), None)
    if repeated is not None:
        raise invalid_value("tools", f"the function name '{repeated}' is offered twice.")
    return tools


def _function(tool: dict[str, Any], param: str, namespace: str | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the tool as echoed, the chat function tool offered to the model)."""
    name = required_str(tool, "name", f"{param}.name")
    description = optional_str(tool, "description", f"{param}.description")
    parameters = optional_dict(tool, "parameters", f"{param}.parameters")
    strict = tool.get("strict")
    if strict is not None and not isinstance(strict, bool):
        raise invalid_type(f"{param}.strict", "a boolean", strict)
    function: dict[str, Any] = {"name": flat_name(namespace, name)}
    if description is not None:
        function["description"] = description
    if parameters is not None:
        function["parameters"] = parameters
    if strict is not None:
        function["strict"] = strict
    echoed = {"type": "function", "name": name, "description": description, "parameters": parameters, "strict": strict}
    return echoed, {"type": "function", "function": function}


def _namespace(tool: dict[str, Any], param: str, tools: ToolSet) -> None:
    namespace = required_str(tool, "name", f"{param}.name")
    if not namespace:
        raise invalid_value(f"{param}.name", "the namespace name must not be empty.")
    description = optional_str(tool, "description", f"{param}.description")
    inner_echoed: list[dict[str, Any]] = []
    for position, inner in enumerate(optional_list(tool, "tools", f"{param}.tools") or []):
        inner_param = f"{param}.tools[{position}]"
        if not isinstance(inner, dict):
            raise invalid_type(inner_param, "an object", inner)
        kind = required_str(inner, "type", f"{inner_param}.type")
        if kind != "function":
            raise unsupported(
                f"{inner_param}.type",
                f"The tool type '{kind}' is not supported inside a namespace: only 'function' tools are.",
            )
        echoed, chat = _function(inner, inner_param, namespace)
        inner_echoed.append(echoed)
        if description:  # the namespace's description is shown to the model with each of its tools
            own = chat["function"].get("description")
            chat["function"]["description"] = f"{description}\n\n{own}" if own else description
        tools.chat.append(chat)
        tools.namespaced[chat["function"]["name"]] = (namespace, echoed["name"])
    tools.echoed.append({"type": "namespace", "name": namespace, "description": description, "tools": inner_echoed})
