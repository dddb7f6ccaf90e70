"""Random sentences of a GBNF grammar (the subset sluicegate writes), for testing grammars
without a model: every sentence of a schema's grammar must be JSON the schema accepts.

Characters of a class are drawn from a pool that includes control characters, quotes and
backslashes, so a class that lets them through is caught. Deep in the derivation the sampler
takes the shortest way out, so recursive grammars end.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

POOL = [chr(c) for c in range(0, 0x80)] + list("éü中文😀ø\u2028")


@dataclass
class Lit:
    text: str


@dataclass
class Cls:
    negated: bool
    spans: list[tuple[int, int]]

    def allows(self, character: str) -> bool:
        inside = any(a <= ord(character) <= b for a, b in self.spans)
        return inside != self.negated


@dataclass
class Ref:
    name: str


@dataclass
class Seq:
    items: list[object]


@dataclass
class Alt:
    options: list[object]


@dataclass
class Rep:
    item: object
    least: int
    most: int | None


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "[": "[", "]": "]", "-": "-", "^": "^"}


class _Reader:
    def __init__(self, text: str) -> None:
        self.text, self.at = text, 0

    def skip(self) -> None:
        while self.at < len(self.text) and self.text[self.at] in " \t":
            self.at += 1

    def char(self) -> str:
        c = self.text[self.at]
        self.at += 1
        if c != "\\":
            return c
        e = self.text[self.at]
        self.at += 1
        if e == "x":
            value = self.text[self.at : self.at + 2]
            self.at += 2
            return chr(int(value, 16))
        if e == "u":
            value = self.text[self.at : self.at + 4]
            self.at += 4
            return chr(int(value, 16))
        return _ESCAPES.get(e, e)

    def alternation(self) -> object:
        options = [self.sequence()]
        self.skip()
        while self.at < len(self.text) and self.text[self.at] == "|":
            self.at += 1
            options.append(self.sequence())
            self.skip()
        return options[0] if len(options) == 1 else Alt(options)

    def sequence(self) -> object:
        items: list[object] = []
        while True:
            self.skip()
            if self.at >= len(self.text) or self.text[self.at] in "|)":
                return Seq(items)
            items.append(self.postfix(self.atom()))

    def atom(self) -> object:
        c = self.text[self.at]
        if c == '"':
            self.at += 1
            out = []
            while self.text[self.at] != '"':
                out.append(self.char())
            self.at += 1
            return Lit("".join(out))
        if c == "[":
            self.at += 1
            negated = self.text[self.at] == "^"
            if negated:
                self.at += 1
            spans = []
            while self.text[self.at] != "]":
                a = self.char()
                if self.text[self.at] == "-" and self.text[self.at + 1] != "]":
                    self.at += 1
                    b = self.char()
                    spans.append((ord(a), ord(b)))
                else:
                    spans.append((ord(a), ord(a)))
            self.at += 1
            return Cls(negated, spans)
        if c == "(":
            self.at += 1
            inner = self.alternation()
            self.skip()
            assert self.text[self.at] == ")", self.text[self.at :]
            self.at += 1
            return inner
        name = re.match(r"[a-zA-Z0-9-]+", self.text[self.at :])
        assert name, self.text[self.at :]
        self.at += len(name.group())
        return Ref(name.group())

    def postfix(self, item: object) -> object:
        if self.at >= len(self.text):
            return item
        c = self.text[self.at]
        if c in "?*+":
            self.at += 1
            return Rep(item, 0 if c != "+" else 1, 1 if c == "?" else None)
        if c == "{":
            close = self.text.index("}", self.at)
            low, comma, high = self.text[self.at + 1 : close].partition(",")
            self.at = close + 1
            return Rep(item, int(low), int(low) if not comma else (int(high) if high else None))
        return item


def parse(grammar: str) -> dict[str, object]:
    rules = {}
    for line in grammar.strip().splitlines():
        name, _, body = line.partition(" ::= ")
        reader = _Reader(body)
        rules[name.strip()] = reader.alternation()
        assert reader.at == len(body), (name, body[reader.at :])
    for name, rule in rules.items():  # every referenced rule is defined
        for ref in re.findall(r"Ref\(name='([^']+)'\)", repr(rule)):
            assert ref in rules, f"{name} refers to undefined {ref}"
    return rules


class Sampler:
    def __init__(self, grammar: str, rng: random.Random) -> None:
        self.rules = parse(grammar)
        self.rng = rng
        self.cost: dict[str, float] = {name: float("inf") for name in self.rules}
        changed = True
        while changed:  # shortest expansions, to a fixed point
            changed = False
            for name, rule in self.rules.items():
                cost = self._cost(rule)
                if cost < self.cost[name]:
                    self.cost[name], changed = cost, True

    def _cost(self, node: object) -> float:
        if isinstance(node, Lit | Cls):
            return 1
        if isinstance(node, Ref):
            return self.cost[node.name] + 1
        if isinstance(node, Seq):
            return sum(self._cost(item) for item in node.items)
        if isinstance(node, Alt):
            return min(self._cost(option) for option in node.options)
        assert isinstance(node, Rep)
        return node.least * self._cost(node.item)

    def sentence(self, start: str = "root") -> str:
        out: list[str] = []
        self._emit(Ref(start), 0, out)
        return "".join(out)

    def _emit(self, node: object, depth: int, out: list[str]) -> None:
        deep = depth > 40
        if isinstance(node, Lit):
            out.append(node.text)
        elif isinstance(node, Cls):
            options = [c for c in POOL if node.allows(c)]
            assert options, node
            out.append(self.rng.choice(options))
        elif isinstance(node, Ref):
            self._emit(self.rules[node.name], depth + 1, out)
        elif isinstance(node, Seq):
            for item in node.items:
                self._emit(item, depth, out)
        elif isinstance(node, Alt):
            option = min(node.options, key=self._cost) if deep else self.rng.choice(node.options)
            self._emit(option, depth, out)
        elif isinstance(node, Rep):
            most = node.most if node.most is not None else node.least + 4
            count = node.least if deep else self.rng.randint(node.least, most)
            for _ in range(count):
                self._emit(node.item, depth + 1, out)
