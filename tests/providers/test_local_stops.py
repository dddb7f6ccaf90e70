"""Stop sequences over the embedded model's token stream: text held back only while it may
start a stop string, and the sequence that ended the answer named (Anthropic's `stop_sequence`)."""

from __future__ import annotations

from sluicegate.providers.local.stops import StopMatcher


def feed_all(matcher: StopMatcher, pieces: list[str]) -> tuple[str, bool]:
    out = ""
    for piece in pieces:
        text, stopped = matcher.feed(piece)
        out += text
        if stopped:
            return out, True
    return out + matcher.flush(), False


def test_the_earliest_stop_in_the_text_wins_and_is_named() -> None:
    matcher = StopMatcher(["END", "\n\n"])
    assert feed_all(matcher, ["Hello", " wor", "ld\n", "\nmore END"]) == ("Hello world", True)
    assert matcher.matched == "\n\n"


def test_a_stop_split_across_tokens_is_held_then_matched() -> None:
    matcher = StopMatcher(["STOP"])
    assert matcher.feed("abc ST") == ("abc ", False)
    assert matcher.feed("O") == ("", False)
    assert matcher.feed("P tail") == ("", True)
    assert matcher.matched == "STOP"


def test_no_stop_reached_names_none_and_releases_held_text() -> None:
    matcher = StopMatcher(["STOP"])
    assert feed_all(matcher, ["one S", "T"]) == ("one ST", False)
    assert matcher.matched is None
