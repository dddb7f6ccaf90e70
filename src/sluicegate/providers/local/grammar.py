"""The grammars generation runs under: JSON mode, structured outputs and tool calls.

Built from `gbnf` (our JSON Schema converter) and handed to generation as a llama.cpp
`LlamaGrammar`. The GBNF text is built first (pure Python, no model), so a request whose
grammar cannot be built is refused before it is queued.
"""

from __future__ import annotations

import json
from typing import Any

from sluicegate.errors import InvalidRequestError
from sluicegate.providers.local.gbnf import Grammar, literal
from sluicegate.providers.local.tools import ToolPlan


def response_gbnf(response_format: dict[str, Any] | None) -> str | None:
    """The grammar of `response_format` (None: free text)."""
    if not response_format or response_format.get("type") in (None, "text"):
        return None
    kind = response_format.get("type")
    grammar = Grammar()
    if kind == "json_object":
        return grammar.text(grammar.primitive("object"))
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if schema is not None and not isinstance(schema, dict | bool):
            raise InvalidRequestError(
                "'response_format.json_schema.schema' must be a JSON Schema object.",
                param="response_format.json_schema.schema",
            )
        return grammar.text(grammar.visit(schema if schema is not None else {}, schema, "answer"))
    raise InvalidRequestError(
        f"Unsupported response_format type `{kind}`; use text, json_object or json_schema.",
        param="response_format.type",
    )


def calls_gbnf(plan: ToolPlan | None) -> str | None:
    """The grammar of an answer's calls, SmolLM2's format `[{"name": ..., "arguments": {...}}]`:
    only the offered tools, each with arguments its own schema allows (its `$ref`s resolve
    within its own parameters)."""
    if plan is None:
        return None
    grammar = Grammar()
    ws = grammar.primitive("ws")
    calls = []
    for tool in plan.tools:
        name = tool["name"]
        arguments = grammar.visit(tool["parameters"], tool["parameters"], f"{name}-arguments")
        calls.append(
            f'{literal(json.dumps(name, ensure_ascii=False))} "," {ws} "\\"arguments\\"" {ws} ":" {ws} {arguments}'
        )
    call = grammar.rule("call", f'"{{" {ws} "\\"name\\"" {ws} ":" {ws} ( {" | ".join(calls)} ) {ws} "}}"')
    more = f' ( "," {ws} {call} )*' if plan.parallel else ""
    return grammar.text(grammar.rule("calls", f'"[" {ws} {call}{more} {ws} "]"'))


def llama_grammar(gbnf: str | None, param: str) -> Any:
    """The `LlamaGrammar` generation takes; a grammar llama.cpp will not parse (a converter
    bug, never the client's schema) is still the request's clear error, not a crash."""
    if gbnf is None:
        return None
    from llama_cpp.llama_grammar import LlamaGrammar

    try:
        return LlamaGrammar.from_string(gbnf, verbose=False)
    except Exception as exc:
        raise InvalidRequestError(
            f"The embedded model could not build a grammar for this schema: {exc or type(exc).__name__}", param=param
        ) from exc


def response_grammar(response_format: dict[str, Any] | None) -> Any:
    """JSON mode and structured outputs, as generation takes them."""
    return llama_grammar(response_gbnf(response_format), "response_format")


def calls_grammar(plan: ToolPlan | None) -> Any:
    """The tools' calls, as generation takes them."""
    return llama_grammar(calls_gbnf(plan), "tools")
