"""/cover with new lyrics on the following lines and a vocal language (issue 23): the parser's part."""

from __future__ import annotations

import pytest

from bot.core.parser import CoverRequest, parse_command, parse_cover, parse_song
from storage.contract.errors import UserError

SPANISH = "[Verse 1]\nLa luna sobre el mar\n\n[Chorus]\nBaila conmigo, corazón"


def test_cover_takes_lyrics_on_the_following_lines_and_a_language():
    request = parse_cover(parse_command(f"/cover bossa nova strength=0.8 language=ES\n{SPANISH}\n"))
    assert request == CoverRequest(style="bossa nova", strength=0.8, lyrics=SPANISH, language="es")


def test_cover_lyrics_are_taken_exactly_as_song_takes_them():
    text = f"/x a style language=es\n\n{SPANISH}\n\n"
    song = parse_song(parse_command(text.replace("/x", "/song")))
    cover = parse_cover(parse_command(text.replace("/x", "/cover")))
    assert (cover.lyrics, cover.language) == (song.lyrics, song.language) == (SPANISH, "es")


def test_console_cover_takes_the_path_then_the_style_then_the_lyrics():
    request = parse_cover(parse_command('/cover "/tmp/my song.mp3" jazz language=ja\n夜の街を歩く'), with_path=True)
    assert (request.path, request.style, request.lyrics, request.language) == (
        "/tmp/my song.mp3",
        "jazz",
        "夜の街を歩く",
        "ja",
    )


def test_a_cover_without_lyrics_is_as_before():
    request = parse_cover(parse_command("/cover jazz trio strength=0.7"))
    assert (request.lyrics, request.language, request.instrumental) == ("", None, False)


def test_an_unknown_language_gets_the_same_sentence_as_on_a_song():
    with pytest.raises(UserError) as on_cover:
        parse_cover(parse_command("/cover jazz language=klingon\nla la"))
    with pytest.raises(UserError) as on_song:
        parse_song(parse_command("/song jazz language=klingon\nla la"))
    assert on_cover.value.user_message == on_song.value.user_message
    assert on_cover.value.user_message == (
        "I don't know the language 'klingon'; use a code such as en, es, de, fr, ja or zh."
    )


def test_an_instrumental_cover_takes_no_lyrics():
    assert parse_cover(parse_command("/cover jazz instrumental=true")).instrumental
    with pytest.raises(UserError, match="can't be instrumental; leave out instrumental=true or the lyrics"):
        parse_cover(parse_command("/cover jazz instrumental=yes\nla la la"))


def test_the_cover_options_sentence_lists_language():
    with pytest.raises(UserError, match="language=") as error:
        parse_cover(parse_command("/cover jazz bpm=90"))
    assert "I don't know the option bpm=" in error.value.user_message


def test_a_cover_says_why_it_takes_no_duration():
    # A cover is as long as its recording: duration= was once accepted and silently dropped.
    for text in ("/cover jazz duration=30", "/cover ~/a.mp3 jazz duration=30"):
        with pytest.raises(UserError, match="as long as its recording, so it takes no duration="):
            parse_cover(parse_command(text), with_path=text.startswith("/cover ~"))
