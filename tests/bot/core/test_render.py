"""The result caption's song line, read back from a caption of ours."""

from __future__ import annotations

from bot.core.render import captioned_song


def test_the_song_line_of_a_caption_names_its_song() -> None:
    caption = "🎵 Rain On A Tin Roof\nStyle: rain on a tin roof\n92 bpm · C minor · 0:20\n#17 · seed 3"
    assert captioned_song(caption) == 17
    assert captioned_song(caption + "\nℹ️ Made by the sketch synthesizer.") == 17


def test_text_that_only_mentions_a_song_names_none() -> None:
    assert captioned_song(None) is None
    assert captioned_song("") is None
    assert captioned_song("a caption that names no song") is None
    assert captioned_song("I liked #17 · seed 3 a lot") is None  # not a line of its own
    assert captioned_song("#17 seed 3") is None
