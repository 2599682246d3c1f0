"""The text syntax of takes, /repaint and /extend: strict ASCII numbers in range, one sentence when wrong."""

import pytest

from bot.core.parser import (
    ExtendRequest,
    RepaintRequest,
    parse_command,
    parse_cover,
    parse_extend,
    parse_repaint,
    parse_song,
    parse_span,
    parse_time,
)
from storage.contract.errors import UserError


def command(text: str):
    parsed = parse_command(text)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("text", "replied", "expected"),
    [
        ("/repaint 12 0:30-0:45 a guitar solo", None, RepaintRequest(12, 30.0, 45.0, "a guitar solo")),
        ("/repaint #12 8-12", None, RepaintRequest(12, 8.0, 12.0)),
        ("/repaint 12\t8-12\tstrings", None, RepaintRequest(12, 8.0, 12.0, "strings")),
        ("/repaint 7.5-12.25", 3, RepaintRequest(3, 7.5, 12.25)),
        ("/repaint 0:08-12 choir", 3, RepaintRequest(3, 8.0, 12.0, "choir")),
        ("/repaint 12 1:00-1:30", 3, RepaintRequest(12, 60.0, 90.0)),  # an id written first wins
    ],
)
def test_repaint(text: str, replied: int | None, expected: RepaintRequest) -> None:
    assert parse_repaint(command(text), replied) == expected


@pytest.mark.parametrize(
    ("text", "replied", "expected"),
    [
        ("/extend 12 30 a slow fade-out", None, ExtendRequest(12, 30, "a slow fade-out")),
        ("/extend 12 30s", None, ExtendRequest(12, 30)),
        ("/extend 30 more drums", 4, ExtendRequest(4, 30, "more drums")),
        ("/extend 30", 4, ExtendRequest(4, 30)),
    ],
)
def test_extend(text: str, replied: int | None, expected: ExtendRequest) -> None:
    assert parse_extend(command(text), replied) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/repaint", "Use /repaint"),
        ("/repaint 0:30-0:45", "Use /repaint"),  # no id and not a reply
        ("/repaint 12 0:45-0:30", "must come after its start"),
        ("/repaint 12 0:30-0:30", "must come after its start"),
        ("/repaint 12 0:30", "Give the part as <start>-<end>"),
        ("/repaint 12 ٣-٥", "Use /repaint"),  # Arabic-Indic digits are not ASCII digits
        ("/extend 12", "Use /extend"),
        ("/extend 12 ３０", "whole number written with the digits 0-9"),  # full-width digits: said, not the usage
        ("/extend 12 ３", "whole number written with the digits 0-9"),
        ("/extend 12 0", "at least 1 second;"),
        ("/extend 12 1.5", "Say how many seconds to add as a whole number"),
    ],
)
def test_bad_edits(text: str, message: str) -> None:
    parse = parse_extend if text.startswith("/extend") else parse_repaint
    with pytest.raises(UserError, match=message):
        parse(command(text))


@pytest.mark.parametrize(("text", "seconds"), [("45", 45.0), ("0:45", 45.0), ("1:15.5", 75.5), ("7.25", 7.25)])
def test_times(text: str, seconds: float) -> None:
    assert parse_time(text) == seconds


@pytest.mark.parametrize("text", ["1:75", "-3", "1e3", "١٢", "1:5", "", "12345", "0x10", " 1 2"])
def test_bad_times(text: str) -> None:
    with pytest.raises(UserError, match="seconds or minutes:seconds"):
        parse_time(text)


def test_spans() -> None:
    assert parse_span("0:30-0:45") == (30.0, 45.0)
    with pytest.raises(UserError, match="<start>-<end>"):
        parse_span("0:30")


def test_takes_on_song_and_cover() -> None:
    assert parse_song(command("/song rain takes=3")).takes == 3
    assert parse_song(command("/song rain")).takes == 1
    assert parse_cover(command("/cover jazz takes=2")).takes == 2
    for bad in ("0", "5", "２", "1.5", "-1"):
        with pytest.raises(UserError, match="takes must be a whole number from 1 to 4"):
            parse_song(command(f"/song rain takes={bad}"))


def test_like_is_a_console_option() -> None:
    assert parse_song(command("/song rain like=~/hum.wav"), with_path=True).like_path == "~/hum.wav"
    with pytest.raises(UserError, match="I don't know the option like="):
        parse_song(command("/song rain like=~/hum.wav"))
