"""Counts in GBNF: an element repeated between two bounds, and the integers of a range.

A lower bound of any size is held exactly: llama.cpp refuses one repetition of more than 2,000,
so a larger one is written as groups of groups (`minLength: 3000` is `( char{128} ){23}
char{56} char*`). An upper bound above `MAX_COUNTED` is left open: "at most n" cannot be nested
the same way without a rule per count. Integers of a range are written digit by digit.
"""

from __future__ import annotations

# One repetition counts at most this many: a larger lower bound is written as nested groups
# (llama.cpp refuses a single repetition of more than 2,000), a larger upper bound is left open.
MAX_COUNTED = 128


def repeat(element: str, least: int, most: int | None) -> str:
    """`element` (one GBNF term: a name or a parenthesized group) `least` to `most` times. A
    lower bound above `MAX_COUNTED` is held exactly, by groups of groups (`minLength: 3000` is
    3,000 characters, not 128); an upper bound above it is left open."""
    if least <= MAX_COUNTED:
        return element + _bounds(least, most)
    return f"{_exactly(element, least)} {element}*"


def _exactly(element: str, count: int) -> str:
    if count <= MAX_COUNTED:
        return element if count == 1 else f"{element}{{{count}}}"
    groups, rest = divmod(count, MAX_COUNTED)
    nested = _exactly(f"( {element}{{{MAX_COUNTED}}} )", groups)
    return nested if rest == 0 else f"{nested} {_exactly(element, rest)}"


def _bounds(least: int, most: int | None) -> str:
    """A GBNF repetition suffix for a count `repeat` may write at once (`least` within
    `MAX_COUNTED`); an upper bound beyond it is left open."""
    if most is not None and most < least:
        most = least
    if most is not None and most > MAX_COUNTED:
        most = None
    if least == 0 and most is None:
        return "*"
    if least == 1 and most is None:
        return "+"
    if least == 0 and most == 1:
        return "?"
    if most is None:
        return f"{{{least},}}"
    return f"{{{least},{most}}}"


def integer_range(low: int | None, high: int | None) -> str:
    """GBNF for the integers in [low, high] (either end open), digit by digit, within 16 digits."""
    if low is not None and low >= 0:
        return _naturals(low, high)
    if high is not None and high < 0:  # -(the naturals in [-high, -low])
        return '"-" ( ' + _naturals(-high, None if low is None else -low) + " )"
    negative = _naturals(1, None if low is None else -low)
    return f'"-" ( {negative} ) | {_naturals(0, high)}'


def _naturals(low: int, high: int | None) -> str:
    """The naturals in [low, high], without leading zeros."""
    top = high if high is not None else 10**16 - 1
    top = min(top, 10**16 - 1)
    if low > top:
        return f'"{low}"'
    options = ['"0"'] if low == 0 else []
    low = max(low, 1)
    if low > top:
        return " | ".join(options)
    for digits in range(len(str(low)), len(str(top)) + 1):
        a = low if digits == len(str(low)) else 10 ** (digits - 1)
        b = top if digits == len(str(top)) else 10**digits - 1
        options.append(_same_length(str(a), str(b)))
    return " | ".join(options)


def _same_length(a: str, b: str) -> str:
    """Digit strings of one length between a and b (inclusive)."""
    if not a:
        return '""'
    if a[0] == b[0]:
        rest = _same_length(a[1:], b[1:]) if len(a) > 1 else ""
        return f'"{a[0]}" ( {rest} )' if rest else f'"{a[0]}"'
    options = []
    n = len(a) - 1
    any_rest = f" [0-9]{{{n}}}" if n else ""
    if n and a[1:] != "0" * n:  # a's first digit, then at least a's rest
        options.append(f'"{a[0]}" ( {_same_length(a[1:], "9" * n)} )')
        first = int(a[0]) + 1
    else:
        first = int(a[0])
    if n and b[1:] != "9" * n:  # b's first digit, then at most b's rest
        options.append(f'"{b[0]}" ( {_same_length("0" * n, b[1:])} )')
        last = int(b[0]) - 1
    else:
        last = int(b[0])
    if first <= last:
        options.append(f"[{first}-{last}]{any_rest}")
    return " | ".join(options)
