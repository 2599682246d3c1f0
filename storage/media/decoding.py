"""Uploads in, bounded: probe a file cheaply (the bot) or decode it once to 48 kHz stereo (the engine).

A file is judged by what it declares before anything is allocated for it: a sample rate outside
what recordings use, too many channels or too many frames get a sentence. It is then read in blocks
and resampled by a streaming `soxr` resampler, whose cost per sample does not grow with the rate,
into one buffer of at most `max_duration_s` at 48 kHz; a header that lies about its length can
therefore make the engine read more blocks, never allocate more memory. Peak memory is the output
plus a few blocks, whatever the file claims.

`probe` reads the same blocks and keeps none of them: it answers the length and refuses the same
files (silent, corrupt, too long) without resampling or holding the audio.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

from storage.contract.errors import BadAudio
from storage.contract.values import SAMPLE_RATE
from storage.media.audio import too_long

if TYPE_CHECKING:
    from av.container import InputContainer

MAX_RATE = 192_000  # the highest rate real recordings use; 384 kHz and up is refused, not resampled
MIN_RATE = 1_000  # a rate this low holds nothing to cover (telephone audio is 8 kHz)
MAX_CHANNELS = 32  # ambisonic and multitrack recordings stay well below; only the first two are used
UNKNOWN_FRAMES = 1 << 62  # libsndfile's frame count (SF_COUNT_MAX) for a file that does not say its length
BLOCK_SAMPLES = 1 << 18  # samples (all channels) read at a time: 1 MiB of float32 per block
SILENCE_PEAK = 1e-4
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"RIFF\x00\x00\x00\x00WEBP")
UNREADABLE = "I couldn't read that file as audio; it may be corrupt or in an unusual format."
ODD_RATE = "That file declares a sample rate of {rate} Hz, which no recording uses; please send a normal audio file."
ODD_CHANNELS = "That file declares {channels} channels, more than I can read; please send a mono or stereo recording."


@dataclass
class _Level:
    """What the blocks held so far: frames read, loudest sample, whether all were finite."""

    limit_frames: int
    max_duration_s: float
    frames: int = 0
    peak: float = 0.0
    finite: bool = True

    def add(self, block: np.ndarray) -> None:
        """Count a block; refuse the file as soon as it runs past the limit."""
        self.frames += block.shape[0]
        if self.frames > self.limit_frames:
            raise too_long(self.max_duration_s)
        if block.size:
            self.finite = self.finite and bool(np.isfinite(block).all())
            self.peak = max(self.peak, float(np.abs(block).max()))  # a NaN is caught by `finite`, not here

    def check(self) -> None:
        """Refuse a file with no sound, or only silence (or NaNs) in it."""
        if self.frames == 0:
            raise BadAudio("That file holds no sound I could read; it may be truncated.")
        if not self.finite or self.peak < SILENCE_PEAK:
            raise BadAudio("That recording is silent, so there is nothing in it to use.")


@dataclass
class _Source:
    """An opened upload: its rate and channels, checked, and its blocks of float32 (frames, channels)."""

    rate: int
    channels: int
    blocks: Iterator[np.ndarray] = field(repr=False)


def probe(data: bytes, max_duration_s: float) -> float:
    """The length in seconds of an uploaded recording, read through without keeping it.

    Raises:
        BadAudio: empty, not audio, an odd rate or channel count, corrupt, silent, or too long.
    """
    source = _open(data, max_duration_s)
    level = _Level(int(max_duration_s * source.rate), max_duration_s)
    _drain(source, level.add)
    level.check()
    return level.frames / source.rate


def decode(data: bytes, max_duration_s: float) -> np.ndarray:
    """Decode an uploaded file to float32 (samples, 2) at 48 kHz, in blocks, with memory near the output's size.

    Raises:
        BadAudio: empty, not audio, an odd rate or channel count, corrupt, silent, or too long.
    """
    source = _open(data, max_duration_s)
    level = _Level(int(max_duration_s * source.rate), max_duration_s)
    output = _Output(int(max_duration_s * SAMPLE_RATE) + SAMPLE_RATE, max_duration_s)
    resampler = _Resampler(source.rate)

    def take(block: np.ndarray) -> None:
        level.add(block)
        output.append(resampler.push(to_stereo(block)))

    _drain(source, take)
    level.check()
    output.append(resampler.flush())
    return output.result()


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """Mono becomes two equal channels; more than two are folded down to the first two."""
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.shape[1] == 1:
        return np.repeat(audio, 2, axis=1).astype(np.float32)
    return np.ascontiguousarray(audio[:, :2], dtype=np.float32)


def _drain(source: _Source, take: Callable[[np.ndarray], None]) -> None:
    """Feed every block to `take`; a decoder failing halfway is the file's fault, said in one sentence."""
    try:
        for block in source.blocks:
            take(block)
    except BadAudio:
        raise
    except Exception as error:  # libsndfile and FFmpeg raise many types for a broken file
        raise BadAudio(UNREADABLE) from error


class _Resampler:
    """Streaming resampling to 48 kHz stereo (`soxr`); a pass-through when the file is at 48 kHz already."""

    def __init__(self, rate: int) -> None:
        self.stream = None
        if rate != SAMPLE_RATE:
            import soxr

            self.stream = soxr.ResampleStream(rate, SAMPLE_RATE, 2, dtype="float32", quality="HQ")

    def push(self, block: np.ndarray) -> np.ndarray:
        """The output for one block (soxr holds back a few samples until the next one)."""
        return block if self.stream is None else self.stream.resample_chunk(block)

    def flush(self) -> np.ndarray:
        """What the resampler still holds, at the end of the file."""
        if self.stream is None:
            return np.zeros((0, 2), np.float32)
        return self.stream.resample_chunk(np.zeros((0, 2), np.float32), last=True)


class _Output:
    """The decoded audio, written into one buffer that is as long as the limit allows.

    `np.empty` reserves the buffer without touching it, so only the pages written count against
    memory; the end is cut off in place (a realloc), so the result is not copied.
    """

    def __init__(self, capacity: int, max_duration_s: float) -> None:
        self.buffer = np.empty((capacity, 2), np.float32)
        self.frames = 0
        self.max_duration_s = max_duration_s

    def append(self, block: np.ndarray) -> None:
        """Copy a resampled block in; past the limit the recording is too long."""
        end = self.frames + block.shape[0]
        if end > self.buffer.shape[0]:
            raise too_long(self.max_duration_s)
        self.buffer[self.frames : end] = block
        self.frames = end

    def result(self) -> np.ndarray:
        """The audio written, the rest of the buffer given back."""
        out, self.buffer = self.buffer, np.empty((0, 2), np.float32)
        out.resize((self.frames, 2), refcheck=False)  # nothing else refers to it: the buffer was ours alone
        return out


def _open(data: bytes, max_duration_s: float) -> _Source:
    """The upload opened by libsndfile, else by FFmpeg, with its declared format checked first."""
    if not data:
        raise BadAudio("That file is empty; send a song, a voice note or an audio file.")
    if data.startswith(IMAGE_MAGIC):
        raise BadAudio("That file is not audio (it looks like a picture or a document); send a song or a voice note.")
    source = _open_with_sndfile(data, max_duration_s)
    return source if source is not None else _open_with_av(data, max_duration_s)


def check_format(rate: int, channels: int) -> None:
    """Refuse a declared rate or channel count no recording has, before reading any audio."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise BadAudio(ODD_RATE.format(rate=f"{rate:,}"))
    if not 1 <= channels <= MAX_CHANNELS:
        raise BadAudio(ODD_CHANNELS.format(channels=channels))


def _open_with_sndfile(data: bytes, max_duration_s: float) -> _Source | None:
    """WAV, FLAC, Ogg Vorbis, MP3, AIFF…; None when libsndfile can't open it (FFmpeg gets the next try)."""
    try:
        handle = sf.SoundFile(io.BytesIO(data))
    except Exception:  # noqa: BLE001 - libsndfile raises several types; PyAV gets the next try
        return None
    if handle.frames >= UNKNOWN_FRAMES:  # no length in the header: libsndfile can't read it in blocks, FFmpeg can
        handle.close()
        return None
    try:
        check_format(int(handle.samplerate), int(handle.channels))
        # A two-hour upload is refused from its header; one whose header understates its length is
        # caught while reading.
        if handle.frames / handle.samplerate > max_duration_s:
            raise too_long(max_duration_s)
    except BadAudio:
        handle.close()
        raise
    return _Source(int(handle.samplerate), int(handle.channels), _sndfile_blocks(handle))


def _sndfile_blocks(handle: sf.SoundFile) -> Iterator[np.ndarray]:
    """Blocks of float32 frames, each of about BLOCK_SAMPLES samples whatever the channel count."""
    frames = max(1024, BLOCK_SAMPLES // handle.channels)
    with handle:
        while True:
            block = handle.read(frames, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                return
            yield block


def _open_with_av(data: bytes, max_duration_s: float) -> _Source:
    """m4a, aac, mp4, webm, ogg/opus voice notes: anything FFmpeg reads, checked before it is decoded."""
    import av

    try:
        container = av.open(io.BytesIO(data), mode="r")
    except Exception as error:  # FFmpeg's errors for a file it can't read vary
        raise BadAudio(UNREADABLE) from error
    try:
        stream = container.streams.audio[0]
        check_format(int(stream.codec_context.sample_rate or SAMPLE_RATE), int(stream.codec_context.channels or 1))
    except BadAudio:
        container.close()
        raise
    except Exception as error:  # no audio stream at all
        container.close()
        raise BadAudio(UNREADABLE) from error
    return _Source(SAMPLE_RATE, 2, _av_blocks(container))


def _av_blocks(container: InputContainer) -> Iterator[np.ndarray]:
    """Frame by frame, converted to 48 kHz stereo float by FFmpeg; each frame's own format checked too."""
    import av

    with container:
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=SAMPLE_RATE)
        for frame in container.decode(audio=0):
            check_format(int(frame.sample_rate), len(frame.layout.channels))
            for out in resampler.resample(frame):
                yield out.to_ndarray().reshape(-1, 2)  # packed float: one row of interleaved samples
        for out in resampler.resample(None):
            yield out.to_ndarray().reshape(-1, 2)
