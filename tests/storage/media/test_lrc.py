"""The LRC text of a song's timing: stamps, headers, and the SYLT entries of the same lines."""

import pytest

from storage.contract.results import LyricTiming, TimedLine
from storage.media import lrc

TIMING = LyricTiming(
    lines=(
        TimedLine(start_s=0.0, end_s=2.0, text="first line"),
        TimedLine(start_s=12.346, end_s=15.0, text="second\nline"),
        TimedLine(start_s=75.999, end_s=80.0, text="third  line"),
    )
)


@pytest.mark.parametrize(
    ("seconds", "written"),
    [(0.0, "[00:00.00]"), (12.346, "[00:12.35]"), (59.996, "[01:00.00]"), (75.5, "[01:15.50]"), (-0.2, "[00:00.00]")],
)
def test_stamps_are_minutes_seconds_and_hundredths(seconds, written):
    assert lrc.stamp(seconds) == written


def test_the_file_has_title_and_length_headers_then_one_timed_line_each():
    text = lrc.lrc_text(TIMING, "Morning [Train]\nRide", 185.4)
    assert text.splitlines() == [
        "[ti:Morning Train Ride]",
        "[length:03:05]",
        "[00:00.00]first line",
        "[00:12.35]second line",
        "[01:16.00]third line",
    ]
    assert text.endswith("\n")


def test_sylt_entries_are_milliseconds():
    assert lrc.sylt_entries(TIMING) == [("first line", 0), ("second line", 12346), ("third line", 75999)]
