"""Probing and decoding uploads in blocks: the bot's probe answers what the engine's decode would."""

import io

import av
import numpy as np
import pytest
import soundfile as sf

from storage.contract.errors import BadAudio
from storage.media import decoding


def sine(seconds: float, rate: int, freq: float = 440.0, channels: int = 1, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def flac(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="FLAC")
    return buffer.getvalue()


def without_length(data: bytes) -> bytes:
    """The FLAC with its total-samples field zeroed ("unknown length")."""
    changed = bytearray(data)
    changed[21] &= 0xF0
    changed[22:26] = bytes(4)
    return bytes(changed)


def mkv_pcm(rate: int, seconds: float) -> bytes:
    """PCM at `rate` in Matroska: a container libsndfile can't open, so FFmpeg reads it."""
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="matroska") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="mono")
        samples = (sine(seconds, rate)[:, 0] * 32767).astype(np.int16)
        for start in range(0, samples.shape[0], 4096):
            frame = av.AudioFrame.from_ndarray(samples[None, start : start + 4096], format="s16", layout="mono")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def test_probe_says_the_length_without_resampling():
    assert decoding.probe(flac(sine(3.0, 44_100), 44_100), 60) == pytest.approx(3.0)
    assert decoding.probe(mkv_pcm(22_050, 2.0), 60) == pytest.approx(2.0, abs=0.05)


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        (flac(sine(1.0, 44_100, amplitude=0.0), 44_100), "silent"),
        (flac(sine(5.0, 8_000), 8_000), "too long"),
        (b"not audio at all" * 20, "couldn't read"),
        (b"", "empty"),
    ],
)
def test_probe_and_decode_refuse_alike(data, sentence):
    for judge in (decoding.probe, decoding.decode):
        with pytest.raises(BadAudio, match=sentence):
            judge(data, 4)


def test_resampling_keeps_pitch_and_length():
    out = decoding.decode(flac(sine(2.0, 44_100, freq=1000.0), 44_100), 60)
    assert out.shape == (96_000, 2) and out.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(out[:, 0]))
    assert np.argmax(spectrum) * 48_000 / out.shape[0] == pytest.approx(1000.0, abs=2.0)
    middle = out[4_800:-4_800, 0]  # away from the filter's edges, the amplitude is kept
    assert np.abs(middle).max() == pytest.approx(0.3, abs=0.01)


def test_a_file_hiding_its_length_is_read_to_its_true_length_or_refused_past_the_limit():
    hidden = without_length(flac(sine(3.0, 16_000), 16_000))
    assert sf.info(io.BytesIO(hidden)).frames >= decoding.UNKNOWN_FRAMES  # libsndfile does not know it
    assert decoding.probe(hidden, 60) == pytest.approx(3.0)
    assert decoding.decode(hidden, 60).shape[0] == 3 * 48_000
    with pytest.raises(BadAudio, match="too long"):
        decoding.decode(hidden, 2)


def test_an_impossible_rate_in_a_container_ffmpeg_reads_is_refused_before_decoding():
    with pytest.raises(BadAudio, match="384,000 Hz, which no recording uses"):
        decoding.probe(mkv_pcm(384_000, 0.5), 60)
    assert decoding.decode(mkv_pcm(96_000, 1.0), 60).shape == (48_000, 2)


def test_too_many_channels_are_refused_from_the_header():
    buffer = io.BytesIO()
    sf.write(buffer, sine(0.5, 8_000, channels=64), 8_000, format="WAV")
    with pytest.raises(BadAudio, match="64 channels"):
        decoding.decode(buffer.getvalue(), 60)
