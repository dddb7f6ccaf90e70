"""Validators for schemas of OpenAI's own OpenAPI spec (read in place from the shared fixtures)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:openai:openapi"


def openapi_to_json_schema(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` (still used in this 3.1 file) -> JSON Schema's `null` branch."""
    if isinstance(node, list):
        return [openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: openapi_to_json_schema(value) for key, value in node.items()}
    if converted.get("nullable") is True:
        converted.pop("nullable")
        return {"anyOf": [converted, {"type": "null"}]}
    return converted


@cache
def _registry(path: Path) -> Registry[Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as file:
        spec = openapi_to_json_schema(yaml.load(file, Loader=loader))
    return Registry().with_resource(SPEC_URI, Resource.from_contents(spec, default_specification=DRAFT202012))


def spec_validator(fixtures: Path, schema: str) -> Draft202012Validator:
    """A validator for `#/components/schemas/<schema>` of `openai-openapi.yaml`."""
    registry = _registry(fixtures / "openai-openapi.yaml")
    return Draft202012Validator({"$ref": f"{SPEC_URI}#/components/schemas/{schema}"}, registry=registry)
