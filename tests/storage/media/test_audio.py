"""Decoding uploads, encoding and tagging MP3s, fitting them under a size limit."""

import io
import wave

import av
import numpy as np
import pytest
import soundfile as sf

from storage.contract.errors import BadAudio
from storage.contract.results import LyricTiming, TimedLine
from storage.media import audio, decoding

RATE = 44_100


def tone(seconds: float, rate: int = RATE, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def encoded(data: np.ndarray, fmt: str, rate: int = RATE) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, data, rate, format=fmt)
    return buffer.getvalue()


def m4a_bytes(seconds: float) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("aac", rate=RATE, layout="mono")
        samples = tone(seconds)[:, 0]
        for start in range(0, samples.shape[0], 1024):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 1024], format="flt", layout="mono")
            frame.sample_rate = RATE
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_decodes_common_formats_to_48k_stereo(fmt):
    out = decoding.decode(encoded(tone(2.0), fmt), max_duration_s=60)
    assert out.dtype == np.float32 and out.shape[1] == 2
    assert abs(out.shape[0] - 2.0 * 48_000) < 48_000 * 0.05
    assert np.abs(out).max() > 0.1


def test_decodes_m4a_through_pyav():
    out = decoding.decode(m4a_bytes(2.0), max_duration_s=60)
    assert out.shape[1] == 2 and abs(out.shape[0] / 48_000 - 2.0) < 0.1


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "not audio"),
        (b"this is just some text, not a song" * 10, "couldn't read"),
    ],
)
def test_refuses_non_audio_with_one_sentence(data, sentence):
    with pytest.raises(BadAudio, match=sentence) as caught:
        decoding.decode(data, max_duration_s=60)
    assert "\n" not in caught.value.user_message and caught.value.user_message.endswith(".")


def test_refuses_truncated_file():
    data = encoded(tone(2.0), "WAV")[:40]
    with pytest.raises(BadAudio):
        decoding.decode(data, max_duration_s=60)


def test_refuses_a_too_long_m4a_while_decoding():
    with pytest.raises(BadAudio, match="too long; I can take recordings up to 3 seconds"):
        decoding.decode(m4a_bytes(6.0), max_duration_s=3)


def test_refuses_too_long_and_silent():
    with pytest.raises(BadAudio, match="too long"):
        decoding.decode(encoded(tone(3.0, rate=8000), "WAV", rate=8000), max_duration_s=2)
    with pytest.raises(BadAudio, match="silent"):
        decoding.decode(encoded(tone(1.0, amplitude=0.0), "WAV"), max_duration_s=60)


def test_wave_with_many_channels_folds_to_stereo():
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(4)
        handle.setsampwidth(2)
        handle.setframerate(48_000)
        handle.writeframes((tone(1.0, 48_000, 4) * 30000).astype("<i2").tobytes())
    out = decoding.decode(buffer.getvalue(), max_duration_s=60)
    assert out.shape == (48_000, 2)


def test_encode_tag_and_read_back(tmp_path):
    samples = tone(3.0, 48_000, 2)
    path = audio.encode_mp3(
        samples,
        tmp_path / "song.mp3",
        audio.Tags(title="Rain", prompt="lo-fi rain", lyrics="la la", seed=42, song_id=7),
    )
    decoded, rate = sf.read(str(path), dtype="float32", always_2d=True)
    assert rate == 48_000 and decoded.shape == samples.shape
    tags = audio.read_tags(path)
    assert tags["title"] == "Rain" and tags["prompt"] == "lo-fi rain" and tags["lyrics"] == "la la"
    assert tags["seed"] == "42" and tags["song_id"] == "7"
    assert audio.duration_of(path) == pytest.approx(3.0, abs=0.01)


def test_timed_lyrics_go_into_sylt_in_milliseconds_beside_uslt(tmp_path):
    from mutagen.id3 import ID3

    timing = LyricTiming(
        lines=(
            TimedLine(start_s=1.5, end_s=3.0, text="the morning train"),
            TimedLine(start_s=4.2345, end_s=6, text="is late"),
        )
    )
    tags = audio.Tags("Train", "folk", "[verse]\nthe morning train\nis late", 3, 12, timing=timing)
    path = audio.encode_mp3(tone(7.0, 48_000, 2), tmp_path / "timed.mp3", tags)
    id3 = ID3(str(path))
    (uslt,) = id3.getall("USLT")
    (sylt,) = id3.getall("SYLT")
    assert uslt.text == "[verse]\nthe morning train\nis late"
    assert (sylt.format, sylt.type, sylt.lang) == (2, 1, "eng")  # milliseconds, lyrics
    assert list(sylt.text) == [("the morning train", 1500), ("is late", 4234)]


def test_untimed_and_instrumental_songs_carry_no_sylt(tmp_path):
    from mutagen.id3 import ID3

    untimed = audio.encode_mp3(tone(2.0, 48_000, 2), tmp_path / "a.mp3", audio.Tags("t", "p", "la la", 1, 1))
    empty = LyricTiming(lines=(TimedLine(start_s=0.5, end_s=1, text="la"),))
    tags = audio.Tags("t", "p", "", 1, 2, timing=empty)
    instrumental = audio.encode_mp3(tone(2.0, 48_000, 2), tmp_path / "b.mp3", tags)
    assert ID3(str(untimed)).getall("SYLT") == [] and ID3(str(untimed)).getall("USLT") != []
    assert ID3(str(instrumental)).getall("SYLT") == [] and ID3(str(instrumental)).getall("USLT") == []


def test_same_samples_same_decoded_audio(tmp_path):
    samples = (np.random.default_rng(0).standard_normal((48_000, 2)) * 0.1).astype(np.float32)
    a = audio.encode_mp3(samples, tmp_path / "a.mp3", audio.Tags("t", "p", "", 1, 1))
    b = audio.encode_mp3(samples, tmp_path / "b.mp3", audio.Tags("t", "p", "", 1, 2))
    assert np.array_equal(sf.read(str(a))[0], sf.read(str(b))[0])


def test_fit_mp3_shrinks_and_keeps_tags(tmp_path):
    samples = (np.random.default_rng(1).standard_normal((48_000 * 20, 2)) * 0.2).astype(np.float32)
    path = audio.encode_mp3(samples, tmp_path / "big.mp3", audio.Tags("Big", "p", "", 5, 9))
    size = path.stat().st_size
    assert audio.fit_mp3(path, size + 1) == path
    smaller = audio.fit_mp3(path, size // 2)
    assert smaller != path and smaller.stat().st_size <= size // 2
    assert audio.read_tags(smaller)["song_id"] == "9"
    assert audio.duration_of(smaller) == pytest.approx(20.0, abs=0.1)
    with pytest.raises(BadAudio, match="too large"):
        audio.fit_mp3(path, 1000)


def test_mp3_keeps_exact_length_and_timing(tmp_path):
    samples = np.zeros((48_000 * 2, 2), np.float32)
    samples[10_000] = 0.9  # a click: it must come back at the same sample, with no priming in front
    path = audio.encode_mp3(samples, tmp_path / "click.mp3", audio.Tags("t", "p", "", 1, 1))
    decoded, _ = sf.read(str(path), dtype="float32", always_2d=True)
    assert decoded.shape == samples.shape and int(np.abs(decoded[:, 0]).argmax()) == 10_000
    through_ffmpeg = decoding.decode(path.read_bytes(), max_duration_s=60)
    assert abs(through_ffmpeg.shape[0] - samples.shape[0]) <= 1152  # FFmpeg reads the same LAME tag


def test_mp3_is_320k_cbr_with_a_lame_tag(tmp_path):
    from mutagen.mp3 import MP3, BitrateMode

    path = audio.encode_mp3(tone(5.0, 48_000, 2), tmp_path / "tone.mp3", audio.Tags("t", "p", "", 1, 1))
    info = MP3(str(path)).info
    assert info.bitrate == 320_000 and info.bitrate_mode == BitrateMode.CBR and info.sample_rate == 48_000
    assert info.length == pytest.approx(5.0, abs=1e-6) and info.encoder_info.startswith("LAME")


def test_without_lameenc_libsndfile_encodes(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "lameenc", None)  # import lameenc now raises ImportError
    assert audio.mp3_bytes(tone(1.0, 48_000, 2)) is None
    path = audio.encode_mp3(tone(3.0, 48_000, 2), tmp_path / "fallback.mp3", audio.Tags("t", "p", "", 4, 5))
    assert audio.duration_of(path) == pytest.approx(3.0, abs=0.01) and audio.read_tags(path)["seed"] == "4"


def test_int16_and_float_input_encode_alike(tmp_path):
    samples = tone(1.0, 48_000, 2)
    assert audio.mp3_bytes(samples) == audio.mp3_bytes(audio.to_pcm16(samples))


@pytest.mark.parametrize(
    ("seconds", "minimum", "said"),
    [(1.0, 3.0, "only 1 second long; covers need at least 3 seconds"), (2.5, 1.0, None), (0.5, 1.0, "1 second.")],
)
def test_a_short_recording_is_said_in_the_right_number(seconds, minimum, said):
    """ "only 1 second long", never "only 1 seconds long"."""
    if said is None:
        audio.check_cover_length(seconds, minimum=minimum)
        return
    with pytest.raises(BadAudio, match=said) as raised:
        audio.check_cover_length(seconds, minimum=minimum)
    assert "1 seconds" not in raised.value.user_message


def test_spans_are_said_in_the_right_number():
    said = [audio.span(s) for s in (1, 2, 60, 90, 120)]
    assert said == ["1 second", "2 seconds", "1 minute", "90 seconds", "2 minutes"]
