"""A JSON Schema `pattern` -> a GBNF expression for the inside of a JSON string.

The common regex subset: literals and escapes, classes (`[a-z]`, `[^...]`, `\\d \\w \\s` and
their negations), `.`, groups (`(...)`, `(?:...)`), alternation and the quantifiers `? * +
{n} {n,} {n,m}`. Anchors are dropped: a pattern is unanchored, so a string that is one whole
match of it matches it. What a JSON string may not hold raw (`"`, `\\`, control characters) is
left out of classes and `.` (the strings written are a subset of the ones the pattern allows).
Anything else (back-references, look-arounds, `\\b`...) raises PatternUnsupported.
"""

from __future__ import annotations

MAX_COUNT = 128
_UNSAFE = '"\\'
_OUTSIDE = r'"\\\x7F\x00-\x1F'  # what no class may let into a JSON string raw
_SHORTHANDS = {"d": "0-9", "w": "a-zA-Z0-9_", "s": " "}


class PatternUnsupported(ValueError):
    """The pattern uses a regex feature the grammar does not hold."""


def pattern_gbnf(pattern: str) -> str:
    """The GBNF expression of the strings (JSON-escaped) that are one whole match of `pattern`."""
    parser = _Parser(pattern)
    expression = parser.alternation()
    if parser.at < len(pattern):
        raise PatternUnsupported(f"unexpected {pattern[parser.at]!r} at {parser.at}")
    return expression


def _class_char(character: str) -> str:
    if character.isalnum() and character.isascii():
        return character
    if ord(character) < 0x80:
        return f"\\x{ord(character):02X}"
    return character


def _literal(character: str) -> str:
    """One pattern character as written inside a JSON string."""
    if character == '"':
        return r'"\\\""'
    if character == "\\":
        return r'"\\\\"'
    if ord(character) < 0x20 or ord(character) == 0x7F:
        escapes = {"\n": "n", "\t": "t", "\r": "r", "\b": "b", "\f": "f"}
        if character in escapes:
            return f'"\\\\{escapes[character]}"'
        return f'"\\\\u{ord(character):04x}"'
    return '"' + character + '"'


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.at = 0

    def peek(self) -> str | None:
        return self.pattern[self.at] if self.at < len(self.pattern) else None

    def take(self) -> str:
        if self.at >= len(self.pattern):
            raise PatternUnsupported("the pattern ends too early")
        character = self.pattern[self.at]
        self.at += 1
        return character

    def alternation(self) -> str:
        branches = [self.sequence()]
        while self.peek() == "|":
            self.take()
            branches.append(self.sequence())
        if len(branches) == 1:
            return branches[0]
        return "( " + " | ".join(branch or '""' for branch in branches) + " )"

    def sequence(self) -> str:
        parts: list[str] = []
        while self.peek() not in (None, "|", ")"):
            atom = self.atom()
            if atom is None:
                continue
            parts.append(self.quantified(atom))
        return " ".join(parts)

    def atom(self) -> str | None:
        character = self.take()
        if character in "^$":
            return None
        if character == "(":
            if self.peek() == "?":
                self.take()
                if self.take() != ":":
                    raise PatternUnsupported("look-arounds and named groups are not held")
            inner = self.alternation()
            if self.take() != ")":
                raise PatternUnsupported("unclosed group")
            return f"( {inner or chr(34) * 2} )"
        if character == "[":
            return self.char_class()
        if character == ".":
            return f"[^{_OUTSIDE}]"
        if character == "\\":
            return self.escape()
        if character in "*+?{":
            raise PatternUnsupported(f"nothing to repeat at {self.at - 1}")
        return _literal(character)

    def escape(self) -> str:
        character = self.take()
        if character in _SHORTHANDS:
            return f"[{_SHORTHANDS[character]}]"
        if character.lower() in _SHORTHANDS:
            return f"[^{_SHORTHANDS[character.lower()]}{_OUTSIDE}]"
        if character in "ntrfv":
            return _literal({"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v"}[character])
        if character.isalnum():
            raise PatternUnsupported(f"the escape \\{character} is not held")
        return _literal(character)

    def char_class(self) -> str:
        negated = self.peek() == "^"
        if negated:
            self.take()
        items: list[str] = []
        first = True
        while True:
            character = self.take()
            if character == "]" and not first:
                break
            first = False
            if character == "\\":
                escaped = self.take()
                if escaped in _SHORTHANDS:
                    items.append(_SHORTHANDS[escaped])
                    continue
                if escaped.lower() in _SHORTHANDS or (escaped.isalnum() and escaped not in "ntrfv"):
                    raise PatternUnsupported(f"\\{escaped} inside a class is not held")
                character = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v"}.get(escaped, escaped)
            if self.peek() == "-" and self.at + 1 < len(self.pattern) and self.pattern[self.at + 1] != "]":
                self.take()
                end = self.take()
                if end == "\\":
                    end = self.take()
                items.append(self._range(character, end))
            elif character not in _UNSAFE and ord(character) >= 0x20 and ord(character) != 0x7F:
                items.append(_class_char(character))
        if negated:
            return f"[^{''.join(items)}{_OUTSIDE}]"
        if not items:
            raise PatternUnsupported("a class with nothing a JSON string holds raw")
        return f"[{''.join(items)}]"

    def _range(self, start: str, end: str) -> str:
        if ord(end) < ord(start):
            raise PatternUnsupported("a reversed class range")
        low = max(ord(start), 0x20)
        if low > ord(end):
            raise PatternUnsupported("a class range of control characters")
        spans = []  # the range without `"` (0x22), `\` (0x5C) and DEL (0x7F)
        for a, b in _split(low, ord(end), (0x22, 0x5C, 0x7F)):
            spans.append(_class_char(chr(a)) if a == b else f"{_class_char(chr(a))}-{_class_char(chr(b))}")
        if not spans:
            raise PatternUnsupported("an empty class range")
        return "".join(spans)

    def quantified(self, atom: str) -> str:
        character = self.peek()
        if character is None or character not in "*+?{":
            return atom
        if character == "{":
            close = self.pattern.find("}", self.at)
            body = self.pattern[self.at + 1 : close] if close > 0 else ""
            low, _, high = body.partition(",")
            if not low.strip().isdigit() or (high.strip() and not high.strip().isdigit()):
                return atom  # a literal `{`, as in most regex engines: the brace is read next
            self.at = close + 1
            least = int(low)
            most: int | None = least if "," not in body else (int(high) if high.strip() else None)
            suffix = _repeat(least, most)
        else:
            self.take()
            suffix = character
        if self.peek() in ("?", "+"):  # lazy or possessive: the same strings
            self.take()
        return f"{atom}{suffix}"


def _repeat(least: int, most: int | None) -> str:
    if least > MAX_COUNT:
        least, most = MAX_COUNT, None
    if most is not None and most > MAX_COUNT:
        most = None
    if most is None:
        return f"{{{least},}}"
    return f"{{{least},{max(least, most)}}}"


def _split(low: int, high: int, holes: tuple[int, ...]) -> list[tuple[int, int]]:
    spans = [(low, high)]
    for hole in holes:
        out: list[tuple[int, int]] = []
        for a, b in spans:
            if a <= hole <= b:
                if a < hole:
                    out.append((a, hole - 1))
                if hole < b:
                    out.append((hole + 1, b))
            else:
                out.append((a, b))
        spans = out
    return spans
