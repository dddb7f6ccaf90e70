r"""JSON Schema -> a llama.cpp grammar (GBNF) whose every sentence is JSON the schema accepts.

Our own converter rather than llama-cpp-python's, which lets raw control characters into
strings (`[^"\\]`), refuses properties with no `type`, and cannot resolve `$ref`s once a
schema is nested in a bigger one. The rules here:
- Strings hold no raw control characters (JSON forbids them unescaped) nor `\u` escapes of
  surrogates (a lone one is invalid to strict parsers); other escapes are allowed.
- Local `$ref`s (`#/$defs/X`, `#/definitions/X`, `#`, any JSON pointer) resolve against the
  schema the ref appears in; each target is one rule, so recursive schemas are recursive rules.
- `anyOf` / `oneOf` are alternatives (`oneOf`'s "exactly one" is not checked), `allOf` is
  merged, `enum` / `const` are literals, a type list or `nullable` is an alternative.
- An object writes its declared properties in order, the required ones always; extra
  properties are written only when the schema declares none (`additionalProperties` then
  types the values).
- Held where a grammar holds them: string `minLength` / `maxLength`, `pattern` (a common
  regex subset), the formats date, time, date-time, uuid, email, ipv4, hostname and uri;
  array `minItems` / `maxItems`, `prefixItems`; integer `minimum` / `maximum` (exclusive
  too), digit by digit; the sign a number's `minimum` >= 0 implies.
- Relaxed (written as the plain type): bounds on non-integer numbers but that sign, `multipleOf`,
  a `maxLength` / `maxItems` above `MAX_COUNTED` (left open), other formats, a
  pattern outside the subset, `not`, `if`/`then`/`else`, `minProperties` /
  `maxProperties`, `patternProperties`, remote `$ref`s (any JSON value).
Nothing a JSON Schema may say is an error: what cannot be held is relaxed, never refused.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sluicegate.providers.local.gbnf_counts import integer_range, repeat
from sluicegate.providers.local.regex_gbnf import PatternUnsupported, pattern_gbnf

MAX_DEPTH = 32  # allOf / $ref chains merged into one schema before giving up (any value)

# `\u` escapes of surrogates are left out: a lone one is invalid JSON to strict parsers (orjson)
CHAR = r'[^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" ([0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))'
PRIMITIVES = {
    "ws": '| " "',
    "char": CHAR,
    "string": '"\\"" char* "\\""',
    "integer": '"-"? ("0" | [1-9] [0-9]{0,15})',
    "natural": '"0" | [1-9] [0-9]{0,15}',
    "negative": '"-" [1-9] [0-9]{0,15}',
    "number": '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,15})?',
    "unsigned": '("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,15})?',
    "positive": '[1-9] [0-9]{0,15} ("." [0-9]{1,15})? | "0." [0-9]{0,14} [1-9]',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" ws ( string ws ":" ws value ( "," ws string ws ":" ws value )* )? ws "}"',
    "array": '"[" ws ( value ( "," ws value )* )? ws "]"',
}
TWO = "[0-9]{2}"
HOUR = '([01] [0-9] | "2" [0-3])'
FORMATS = {
    "date": '"\\"" date-body "\\""',
    "time": '"\\"" time-body "\\""',
    "date-time": '"\\"" date-body "T" time-body "\\""',
    "uuid": '"\\"" [0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12} "\\""',
    "email": '"\\"" [a-zA-Z0-9._+-]{1,64} "@" [a-zA-Z0-9-]{1,63} ("." [a-zA-Z0-9-]{1,63}){0,4} "." [a-zA-Z]{2,6} "\\""',
    "ipv4": '"\\"" octet "." octet "." octet "." octet "\\""',
    "hostname": '"\\"" [a-zA-Z0-9] [a-zA-Z0-9-]{0,62} ("." [a-zA-Z0-9] [a-zA-Z0-9-]{0,62}){0,8} "\\""',
    "uri": '"\\"" [a-zA-Z] [a-zA-Z0-9+.-]{0,15} ":" [^"\\\\\\x7F\\x00-\\x20<>{}|^`]{1,512} "\\""',
}
FORMAT_PARTS = {
    # February stops at 28: without the year's arithmetic, the 29th might not exist
    "date-body": '[0-9]{4} "-" (("0" [13578] | "1" [02]) "-" (day | "30" | "31") | ("0" [469] | "11") "-" (day | "30")'
    ' | "02-" day)',
    "day": '"0" [1-9] | "1" [0-9] | "2" [0-8]',
    "time-body": f'{HOUR} ":" [0-5] [0-9] ":" [0-5] [0-9] ("." [0-9]{{1,6}})? ("Z" | [+-] {HOUR} ":" [0-5] [0-9])',
    "octet": '"25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9]',
}
_STRUCTURAL = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "prefixItems", "enum", "const",
        "anyOf", "oneOf", "allOf", "$ref", "format", "pattern", "minLength", "maxLength", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "nullable",
    }
)  # fmt: skip


def literal(text: str) -> str:
    """A GBNF string literal matching exactly `text`."""
    out = []
    for character in text:
        if character in '"\\':
            out.append("\\" + character)
        elif ord(character) < 0x20 or ord(character) == 0x7F:
            out.append(f"\\x{ord(character):02X}")
        else:
            out.append(character)
    return '"' + "".join(out) + '"'


def json_literal(value: Any) -> str:
    """The grammar for one JSON value, written compactly."""
    return literal(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


class Grammar:
    """Rules collected while visiting schemas; `text(root)` is the whole grammar."""

    def __init__(self) -> None:
        self.rules: dict[str, str] = {}
        self._bodies: dict[str, str] = {}
        self._refs: dict[tuple[int, str], str] = {}

    # -- rules ---------------------------------------------------------------------------
    def primitive(self, name: str) -> str:
        if name not in self.rules:
            body = PRIMITIVES.get(name) or FORMATS.get(name) or FORMAT_PARTS[name]
            self.rules[name] = body
            self._uses(body)
        return name

    def _uses(self, body: str) -> None:
        for used in re.findall(r"[a-zA-Z0-9-]+", _strip_literals(body)):
            if used not in self.rules and (used in PRIMITIVES or used in FORMATS or used in FORMAT_PARTS):
                self.primitive(used)

    def rule(self, hint: str, body: str) -> str:
        """A named rule for `body` (the same body twice is one rule)."""
        if body in self._bodies:
            return self._bodies[body]
        name = self._fresh(hint)
        self.rules[name] = body
        self._bodies[body] = name
        return name

    def _fresh(self, hint: str) -> str:
        base = re.sub(r"[^a-zA-Z0-9-]+", "-", hint).strip("-").lower() or "r"
        base = base if base.startswith("r-") else "r-" + base[:40]
        name, n = base, 1
        while name in self.rules or name in PRIMITIVES or name in FORMATS or name in FORMAT_PARTS:
            n += 1
            name = f"{base}-{n}"
        return name

    def text(self, root: str) -> str:
        for body in [root, *self.rules.values()]:  # the primitives the rules use (`ws`...)
            self._uses(body)
        lines = [f"root ::= {root}"]
        lines += [f"{name} ::= {body}" for name, body in self.rules.items()]
        return "\n".join(lines) + "\n"

    # -- schemas -------------------------------------------------------------------------
    def visit(self, schema: Any, doc: Any, hint: str = "value") -> str:
        """The rule name for values `schema` accepts; `$ref`s resolve within `doc`."""
        if not isinstance(schema, dict):
            return self.primitive("value")  # true, false or not a schema: relaxed to any value
        schema = self._flatten(schema, doc, 0)
        if schema.get("nullable") is True:
            inner = self.visit({k: v for k, v in schema.items() if k != "nullable"}, doc, hint)
            return self.rule(hint + "-or-null", f"{inner} | null") if inner != "null" else inner
        if "$ref" in schema:
            return self._ref(schema["$ref"], doc)
        if "const" in schema:
            return self.rule(hint + "-const", json_literal(schema["const"]))
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rule(hint + "-enum", " | ".join(json_literal(v) for v in schema["enum"]))
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf") and k in _STRUCTURAL}
                names = [self.visit(_merge(rest, b) if rest else b, doc, f"{hint}-{i}") for i, b in enumerate(branches)]
                return self.rule(hint + "-any", " | ".join(dict.fromkeys(names)))
        kind = schema.get("type")
        if isinstance(kind, list):
            kinds: list[str | None] = [k for k in kind if isinstance(k, str)] or [None]
            names = [self.visit({**schema, "type": k}, doc, f"{hint}-{k}") for k in kinds]
            return self.rule(hint + "-types", " | ".join(dict.fromkeys(names)))
        if kind is None:
            kind = _implied_type(schema)
        if kind == "object":
            return self._object(schema, doc, hint)
        if kind == "array":
            return self._array(schema, doc, hint)
        if kind == "string":
            return self._string(schema, hint)
        if kind == "integer":
            return self._integer(schema, hint)
        if kind == "number":
            return self.primitive(_number_kind(schema))
        if kind in ("boolean", "null"):
            return self.primitive(kind)
        return self.primitive("value")

    def _ref(self, ref: Any, doc: Any) -> str:
        key = (id(doc), ref if isinstance(ref, str) else repr(ref))
        if key in self._refs:
            return self._refs[key]
        target = _resolve(ref, doc)
        if target is None:
            return self.primitive("value")  # a remote or broken ref: relaxed to any value
        name = self._fresh(ref.rsplit("/", 1)[-1] if isinstance(ref, str) else "ref")
        self._refs[key] = name
        self.rules[name] = ""  # reserved while the target is visited (it may refer to itself)
        self.rules[name] = self.visit(target, doc, name)
        return name

    def _flatten(self, schema: dict[str, Any], doc: Any, depth: int) -> dict[str, Any]:
        """`allOf` merged into one schema, and a `$ref` with sibling constraints merged too."""
        if depth > MAX_DEPTH:
            return {}
        parts = schema.get("allOf")
        ref = schema.get("$ref")
        siblings = {k for k in schema if k in _STRUCTURAL} - {"$ref"}
        if isinstance(ref, str) and siblings:
            target = _resolve(ref, doc)
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            if isinstance(target, dict):
                return self._flatten(_merge(target, rest), doc, depth + 1)
            return self._flatten(rest, doc, depth + 1)
        if not isinstance(parts, list):
            return schema
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in parts:
            if isinstance(part, dict):
                if isinstance(part.get("$ref"), str):
                    target = _resolve(part["$ref"], doc)
                    part = _merge(target, {k: v for k, v in part.items() if k != "$ref"}) if isinstance(target, dict) else {}
                merged = _merge(merged, self._flatten(part, doc, depth + 1))
        return self._flatten(merged, doc, depth + 1)

    def _object(self, schema: dict[str, Any], doc: Any, hint: str) -> str:
        properties = schema.get("properties")
        properties = dict(properties) if isinstance(properties, dict) else {}
        required = [name for name in schema.get("required") or [] if isinstance(name, str)]
        for name in required:
            properties.setdefault(name, {})
        extra = schema.get("additionalProperties")
        if not properties:
            # a typed map, or any object when nothing is said; declared empty (`properties: {}`,
            # a tool that takes no arguments) or closed, it is `{}`
            if not (isinstance(extra, dict) or extra is True or (extra is None and "properties" not in schema)):
                return self.rule("empty-object", '"{" ws "}"')
            value = self.visit(extra, doc, hint + "-value") if isinstance(extra, dict) else self.primitive("value")
            pair = self.rule(hint + "-pair", f'{self.primitive("string")} ws ":" ws {value}')
            return self.rule(hint, f'"{{" ws ( {pair} ( "," ws {pair} )* )? ws "}}"')
        names = list(properties)
        pairs = [
            self.rule(f"{hint}-{name}-kv", f'{literal(json.dumps(name, ensure_ascii=False))} ws ":" ws '
                      + self.visit(properties[name], doc, f"{hint}-{name}"))
            for name in names
        ]  # fmt: skip
        needed = [name in required for name in names]
        # tails[i]: the properties from i on, after one already written (each behind a comma)
        tails = [""] * (len(names) + 1)
        for i in range(len(names) - 1, 0, -1):
            part = f'"," ws {pairs[i]}' if needed[i] else f'( "," ws {pairs[i]} )?'
            tails[i] = self.rule(f"{hint}-after-{names[i]}", f"{part} {tails[i + 1]}".strip())
        first_required = needed.index(True) if True in needed else len(names)
        starts = []
        for i in range(min(first_required + 1, len(names))):
            rest = tails[i + 1] if i + 1 < len(names) else ""
            starts.append(f"{pairs[i]} {rest}".strip())
        body = " | ".join(starts)
        if first_required == len(names):
            body = f"( {body} )?"
        return self.rule(hint, f'"{{" ws {body} ws "}}"')

    def _array(self, schema: dict[str, Any], doc: Any, hint: str) -> str:
        least = _least(schema.get("minItems"))
        most = _most(schema.get("maxItems"))
        prefix: list[Any] = schema["prefixItems"] if isinstance(schema.get("prefixItems"), list) else []
        items = schema.get("items")
        if isinstance(items, list):  # draft-07 tuple form
            prefix, items = items, schema.get("additionalItems")
        if most == 0:
            return self.rule("empty-array", '"[" ws "]"')
        fixed = [self.visit(part, doc, f"{hint}-{i}") for i, part in enumerate(prefix)]
        if most is not None:
            fixed = fixed[:most]
        more = items is not False and (most is None or most > len(fixed))
        item = self.visit(items if isinstance(items, dict) else {}, doc, hint + "-item") if more else ""
        if fixed:
            body = " \",\" ws ".join(fixed)
            if more:
                low = max(0, least - len(fixed))
                high = None if most is None else most - len(fixed)
                body += " " + repeat(f'( "," ws {item} )', low, high)
            return self.rule(hint, f'"[" ws {body} ws "]"')
        if least == 0:
            tail = repeat(f'( "," ws {item} )', 0, None if most is None else most - 1)
            return self.rule(hint, f'"[" ws ( {item} {tail} )? ws "]"')
        tail = repeat(f'( "," ws {item} )', least - 1, None if most is None else most - 1)
        return self.rule(hint, f'"[" ws {item} {tail} ws "]"')

    def _string(self, schema: dict[str, Any], hint: str) -> str:
        form = schema.get("format")
        if isinstance(form, str) and form in FORMATS:
            return self.primitive(form)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            try:
                return self.rule(hint + "-pattern", f'"\\"" {pattern_gbnf(pattern)} "\\""')
            except PatternUnsupported:
                pass  # relaxed to a plain string
        least = _least(schema.get("minLength"))
        most = _most(schema.get("maxLength"))
        if least == 0 and most is None:
            return self.primitive("string")
        return self.rule(hint + "-string", f'"\\"" {repeat(self.primitive("char"), least, most)} "\\""')

    def _integer(self, schema: dict[str, Any], hint: str) -> str:
        low, high = _integer_bounds(schema)
        if low is None and high is None:
            return self.primitive("integer")
        if low is not None and high is not None and high < low:
            return self.primitive("integer")  # no integer fits: relaxed
        return self.rule(hint + "-range", integer_range(low, high))


def schema_gbnf(schema: Any) -> str:
    """The grammar of JSON values `schema` accepts (relaxed where a grammar cannot hold it)."""
    grammar = Grammar()
    return grammar.text(grammar.visit(schema, schema, "root-value"))


def _strip_literals(body: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"|\[(?:[^\]\\]|\\.)*\]', " ", body)


def _implied_type(schema: dict[str, Any]) -> str | None:
    if any(k in schema for k in ("properties", "additionalProperties", "required", "patternProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(k in schema for k in ("pattern", "format", "minLength", "maxLength")):
        return "string"
    return None


def _resolve(ref: Any, doc: Any) -> Any:
    """The target of a local JSON-pointer `$ref` within `doc`, or None."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        return None
    from urllib.parse import unquote

    node = doc
    for raw in unquote(ref[1:]).split("/")[1:]:
        part = raw.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _merge(a: Any, b: Any) -> dict[str, Any]:
    """Two schemas a value must both satisfy, as one (as far as a grammar needs)."""
    if not isinstance(a, dict):
        return dict(b) if isinstance(b, dict) else {}
    if not isinstance(b, dict):
        return dict(a)
    out = dict(a)
    for key, value in b.items():
        if key not in out:
            out[key] = value
        elif key == "properties" and isinstance(value, dict) and isinstance(out[key], dict):
            props = dict(out[key])
            for name, sub in value.items():
                props[name] = {"allOf": [props[name], sub]} if name in props else sub
            out[key] = props
        elif key == "required" and isinstance(value, list) and isinstance(out[key], list):
            out[key] = list(dict.fromkeys([*out[key], *value]))
        elif key == "type":
            mine = out[key] if isinstance(out[key], list) else [out[key]]
            theirs = value if isinstance(value, list) else [value]
            both = [t for t in mine if t in theirs] or (["integer"] if "integer" in mine + theirs else mine)
            out[key] = both[0] if len(both) == 1 else both
        elif key == "enum" and isinstance(value, list) and isinstance(out[key], list):
            out[key] = [v for v in out[key] if v in value] or out[key]
        elif key in ("minimum", "minLength", "minItems", "exclusiveMinimum"):
            out[key] = max(out[key], value) if _numbers(out[key], value) else out[key]
        elif key in ("maximum", "maxLength", "maxItems", "exclusiveMaximum"):
            out[key] = min(out[key], value) if _numbers(out[key], value) else out[key]
        elif key == "additionalProperties" and value is False:
            out[key] = False
    return out


def _numbers(*values: Any) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def _least(value: Any) -> int:
    """A lower count bound (minItems, minLength): 0 when absent or not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _most(value: Any) -> int | None:
    """An upper count bound (maxItems, maxLength): None when absent or not a count."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    import math

    low: int | None = None
    high: int | None = None
    if _numbers(schema.get("minimum")):
        low = math.ceil(schema["minimum"])
    if _numbers(schema.get("exclusiveMinimum")):
        low = max(low if low is not None else -(2**63), math.floor(schema["exclusiveMinimum"]) + 1)
    if _numbers(schema.get("maximum")):
        high = math.floor(schema["maximum"])
    if _numbers(schema.get("exclusiveMaximum")):
        high = min(high if high is not None else 2**63, math.ceil(schema["exclusiveMaximum"]) - 1)
    return low, high


def _number_kind(schema: dict[str, Any]) -> str:
    """The primitive for a number: the sign its lower bound implies, the rest relaxed."""
    exclusive, inclusive = schema.get("exclusiveMinimum"), schema.get("minimum")
    if isinstance(exclusive, int | float) and not isinstance(exclusive, bool) and exclusive >= 0:
        return "positive"
    if isinstance(inclusive, int | float) and not isinstance(inclusive, bool) and inclusive >= 0:
        return "positive" if inclusive > 0 else "unsigned"
    return "number"
