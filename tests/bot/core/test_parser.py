import pytest

from bot.core.parser import (
    normalize_key,
    parse_admin,
    parse_command,
    parse_cover,
    parse_id_arg,
    parse_reroll,
    parse_song,
    parse_time_signature,
)
from storage.contract.errors import UserError


def song(text: str):
    command = parse_command(text, "songbot")
    assert command is not None
    return parse_song(command)


def test_plain_text_and_other_bots_are_ignored():
    assert parse_command("hello there") is None
    assert parse_command("/song@otherbot rain", "songbot") is None
    assert parse_command("/song@SongBot rain", "songbot").name == "song"
    assert parse_command("/song@songbot rain") is None  # no username known: cannot be ours


def test_song_with_options_and_lyrics():
    request = song(
        '/song lo-fi rain at night duration=45 bpm=80 key="F# minor" seed=7 language=EN\n'
        "[verse]\nthe rain is falling\n\n[chorus]\nla la"
    )
    assert request.description == "lo-fi rain at night"
    assert (request.duration_s, request.bpm, request.key, request.seed, request.language) == (
        45,
        80,
        "F# minor",
        7,
        "en",
    )
    assert request.lyrics == "[verse]\nthe rain is falling\n\n[chorus]\nla la"
    assert request.instrumental is False


def test_song_defaults_and_instrumental():
    request = song("/song upbeat folk instrumental=yes timesig=3/4 duration=30s")
    assert request.instrumental and request.time_signature == 3 and request.duration_s == 30
    assert request.bpm is None and request.key is None and request.seed is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/song", "Tell me what the song should be about"),
        ("/song   duration=30", "Tell me what the song should be about"),
        ("/song rain tempo=90", "I don't know the option tempo="),
        ("/song rain bpm=fast", "bpm must be a whole number"),
        ("/song rain seed=-1", "seed must be between"),
        ("/song rain seed=99999999999", "seed must be between"),
        ("/song rain key=H", "I don't know the key"),
        ("/song rain language=klingon", "I don't know the language"),
        ("/song rain instrumental=maybe", "instrumental must be true or false"),
        ("/song rain timesig=5/4", "timesig must be"),
    ],
)
def test_song_errors_are_one_sentence(text, message):
    with pytest.raises(UserError, match=message) as caught:
        song(text)
    assert "\n" not in caught.value.user_message


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("c", "C major"),
        ("Cm", "C minor"),
        ("c#min", "C# minor"),
        ("Bb major", "Bb major"),
        ("F#-minor", "F# minor"),
        ("E♭ minor", "Eb minor"),
    ],
)
def test_keys_are_normalized(given, normal):
    assert normalize_key(given) == normal


def test_cover_on_telegram_and_console():
    command = parse_command("/cover jazz trio strength=0.7")
    request = parse_cover(command)
    assert (request.style, request.strength, request.path) == ("jazz trio", 0.7, None)
    console = parse_cover(parse_command('/cover "/tmp/my song.mp3" bossa nova'), with_path=True)
    assert console.path == "/tmp/my song.mp3" and console.style == "bossa nova"
    with pytest.raises(UserError, match="between 0 and 1"):
        parse_cover(parse_command("/cover strength=2"))
    with pytest.raises(UserError, match="Give the audio file"):
        parse_cover(parse_command("/cover"), with_path=True)


def test_reroll_and_ids():
    assert parse_reroll(parse_command("/reroll 12")) == (12, None)
    assert parse_reroll(parse_command("/reroll #12 4242")) == (12, 4242)
    assert parse_reroll(parse_command("/reroll 12 seed=5")) == (12, 5)
    for bad in ("/reroll", "/reroll abc", "/reroll 1 2 3"):
        with pytest.raises(UserError):
            parse_reroll(parse_command(bad))
    assert parse_id_arg(parse_command("/cancel"), "usage") is None
    assert parse_id_arg(parse_command("/cancel #5"), "usage") == 5
    with pytest.raises(UserError, match="usage"):
        parse_id_arg(parse_command("/cancel five"), "usage")


def test_time_signature_forms():
    assert [parse_time_signature(v) for v in ("4", "4/4", "6/8", "2/4")] == [4, 4, 6, 2]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/song rain duration=", "Give duration= a value"),
        ("/song rain duration= 30", "Give duration= a value"),
        ("/song rain tempo=", "I don't know the option tempo="),
        ("/song rain timesig=4/0", "timesig must be"),
        ("/song rain timesig=3/8", "timesig must be"),
        ("/song rain timesig=4/", "timesig must be"),
        ("/song rain duration=３０", "duration must be a whole number written with the digits 0-9"),
        ("/song rain bpm=٩٠", "bpm must be a whole number written with the digits 0-9"),
        ("/song rain bpm=1_00", "bpm must be a whole number, not '1_00'"),
        ("/song rain bpm=+90", "bpm must be a whole number"),
        ("/song rain duration=99999999999999999999", "duration must be a whole number"),
        ("/song rain seed=４２", "digits 0-9"),
        ("/song rain seed=4294967296", "seed must be between 0 and 4294967295"),
    ],
)
def test_options_are_parsed_strictly(text, message):
    with pytest.raises(UserError, match=message) as caught:
        song(text)
    assert "\n" not in caught.value.user_message


def test_negative_numbers_reach_the_range_checks():
    assert song("/song rain duration=-5").duration_s == -5  # the service says "between 10 and …"
    with pytest.raises(UserError, match="seed must be between 0 and"):
        song("/song rain seed=-3")


@pytest.mark.parametrize(
    "text", ["/cover strength=０.５", "/cover strength=nan", "/cover strength=inf", "/cover strength=1e-1"]
)
def test_cover_strength_is_a_plain_decimal(text):
    with pytest.raises(UserError, match="strength must be"):
        parse_cover(parse_command(text))


def test_cover_strength_below_zero_gets_the_range_sentence():
    with pytest.raises(UserError, match="between 0 and 1"):
        parse_cover(parse_command("/cover strength=-0.5"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("/reroll ²", "song id must be a whole number written with the digits 0-9"),
        ("/reroll １２", "digits 0-9"),
        ("/reroll 99999999999999999999", "song id must be a whole number"),
        ("/reroll 2147483648", "song id must be between 1 and 2147483647"),
        ("/reroll -4", "song id must be between 1 and"),
        ("/reroll 0", "song id must be between 1 and"),
        ("/reroll 12 ４２", "seed must be a whole number written with the digits 0-9"),
    ],
)
def test_reroll_ids_are_parsed_strictly(text, message):
    with pytest.raises(UserError, match=message):
        parse_reroll(parse_command(text))


@pytest.mark.parametrize("args", ["²", "１２", "-1", "99999999999999999999", "2147483648", "0"])
def test_lyrics_and_cancel_ids_are_parsed_strictly(args):
    with pytest.raises(UserError):
        parse_id_arg(parse_command(f"/lyrics {args}"), "Use /lyrics <song id>.")


def test_a_quota_in_other_digits_is_refused():
    with pytest.raises(UserError, match="The quota must be"):
        parse_admin("quota telegram:1 ²")
