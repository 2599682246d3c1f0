"""Audio files: encode and tag MP3s, shrink them to fit a limit, and the sentences about a recording's length.

Uploads are probed and decoded in `storage.media.decoding`, bounded in memory whatever they claim.

MP3s are 320 kb/s CBR, encoded by LAME through `lameenc` at LAME's default algorithm quality
(-q 3): about 4x faster than libsndfile's LAME build, which hard-codes -q 2 (bench/encode.py
measures both, with the SNR of each). `lameenc` writes no LAME "Info" frame, so one is added
here: it carries the encoder delay and padding, and decoders (mpg123, mutagen, browsers) then
report the exact duration and drop the 1105 samples of priming. libsndfile is the fallback.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from storage.contract.errors import BadAudio
from storage.contract.results import LyricTiming
from storage.contract.text import counted
from storage.contract.values import MIN_SOURCE_S, SAMPLE_RATE
from storage.media import lrc

MP3_KBPS = 320
FIT_KBPS = (256, 192, 160, 128, 96, 64, 32)  # what fit_mp3 tries, largest first
LAME_QUALITY = 3  # LAME's own default: 2 is ~1.8x slower for no audible gain at 320 kb/s
LAME_DELAY = 576  # samples of priming LAME 3.100 puts before the audio (decoders add 529 of their own)
FRAME_SAMPLES = 1152  # MPEG-1 layer III
INFO_BYTES = 192  # a LAME tag ends 192 bytes into its frame
_MPEG1_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
_MPEG1_RATES = (44_100, 48_000, 32_000)


@dataclass(frozen=True)
class Tags:
    """What goes into the MP3's ID3 tag."""

    title: str
    prompt: str
    lyrics: str
    seed: int
    song_id: int
    artist: str = "songbot"
    timing: LyricTiming | None = None  # when each sung line starts: a SYLT frame beside the USLT one


def too_long(max_duration_s: float) -> BadAudio:
    """The refusal of a recording longer than the limit."""
    return BadAudio(f"That recording is too long; I can take recordings up to {span(max_duration_s)}.")


def check_cover_length(seconds: float, what: str = "covers", minimum: float = MIN_SOURCE_S) -> None:
    """Refuse a recording too short to use (tenths shown, so that 2.9 s is not "3 seconds").

    Args:
        seconds: The recording's length.
        what: What it is for, in the sentence ("covers", "clips").
        minimum: The shortest length allowed (covers: MIN_SOURCE_S).

    Raises:
        BadAudio: shorter than `minimum`.
    """
    if seconds < minimum:
        raise BadAudio(
            f"That recording is only {counted(round(seconds, 1), 'second')} long; "
            f"{what} need at least {counted(minimum, 'second')}."
        )


def span(seconds: float) -> str:
    """`600` → `10 minutes`, `90` → `90 seconds`."""
    if seconds >= 60 and seconds % 60 == 0:
        return counted(seconds // 60, "minute")
    return counted(seconds, "second")


def encode_mp3(
    audio: np.ndarray, path: Path, tags: Tags | None = None, kbps: int = MP3_KBPS, rate: int = SAMPLE_RATE
) -> Path:
    """Write `audio` (float or int16, (samples, channels)) as a constant-bitrate MP3 and tag it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = mp3_bytes(audio, kbps, rate)
    if data is None:
        _encode_with_libsndfile(audio, path, kbps, rate)
    else:
        path.write_bytes(data)
    if tags is not None:
        write_tags(path, tags)
    return path


def to_pcm16(audio: np.ndarray) -> np.ndarray:
    """Samples as int16: floats in [-1, 1] are clipped and scaled; int16 passes through."""
    if audio.dtype == np.int16:
        return audio
    return (np.clip(audio, -1.0, 1.0) * 32767.0).round().astype(np.int16)


def mp3_bytes(audio: np.ndarray, kbps: int = MP3_KBPS, rate: int = SAMPLE_RATE) -> bytes | None:
    """The MP3 stream with its LAME Info frame, or None when `lameenc` is not installed."""
    try:
        import lameenc
    except ImportError:
        return None
    pcm = np.ascontiguousarray(to_pcm16(audio[:, None] if audio.ndim == 1 else audio))
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(kbps)
    encoder.set_in_sample_rate(rate)
    encoder.set_out_sample_rate(rate)  # LAME would resample low bitrates otherwise
    encoder.set_channels(pcm.shape[1])
    encoder.set_quality(LAME_QUALITY)
    stream = bytes(encoder.encode(pcm.tobytes()) + encoder.flush())
    return info_frame(stream, pcm.shape[0]) + stream


def _encode_with_libsndfile(audio: np.ndarray, path: Path, kbps: int, rate: int) -> None:
    # libsndfile's "compression level" maps linearly from 320 kb/s (0.0) to 32 kb/s (1.0; refused, so 0.99).
    level = min(0.99, max(0.0, (MP3_KBPS - kbps) / (MP3_KBPS - 32)))
    samples = to_pcm16(audio).astype(np.float32) / 32767.0 if audio.dtype == np.int16 else np.clip(audio, -1, 1)
    sf.write(str(path), samples, rate, format="MP3", bitrate_mode="CONSTANT", compression_level=level)


def info_frame(stream: bytes, samples: int) -> bytes:
    """A LAME "Info" frame for a CBR `stream` of `samples` samples per channel (gapless playback).

    It is a silent frame shaped like the stream's first: the Xing fields (frame and byte counts)
    and the LAME extension with encoder delay and padding, closed by the tag's CRC-16.
    """
    header = stream[:4]
    if len(stream) < 4 or header[0] != 0xFF or (header[1] & 0xFE) != 0xFA:
        raise ValueError("not an MPEG-1 layer III stream")
    frames = _count_frames(stream)
    # No CRC, no padding bit; a bitrate high enough that the tag fits (LAME does the same at 32 kb/s).
    index = header[2] >> 4
    while _frame_size(bytes([header[1], (index << 4) | (header[2] & 0x0C), header[3]])) < INFO_BYTES:
        index += 1
    frame_header = bytes([0xFF, header[1] | 0x01, (index << 4) | (header[2] & 0x0C), header[3]])
    size = _frame_size(frame_header[1:4])
    frame = bytearray(size)
    frame[0:4] = frame_header
    side_info = 17 if (header[3] >> 6) == 3 else 32
    tag = 4 + side_info
    frame[tag : tag + 8] = b"Info" + struct.pack(">I", 0xF)  # frames, bytes, seek table, quality
    frame[tag + 8 : tag + 16] = struct.pack(">II", frames, len(stream) + size)
    frame[tag + 16 : tag + 116] = bytes(i * 256 // 100 for i in range(100))  # CBR: a straight line
    frame[tag + 116 : tag + 120] = struct.pack(">I", 100 - 10 * LAME_QUALITY)  # as LAME writes it
    lame = tag + 120
    padding = frames * FRAME_SAMPLES - LAME_DELAY - samples
    frame[lame : lame + 9] = b"LAME3.100"
    frame[lame + 9] = 0x01  # tag revision 0, CBR
    kbps = _MPEG1_KBPS[header[2] >> 4]
    frame[lame + 20] = min(kbps, 255)
    frame[lame + 21 : lame + 24] = ((LAME_DELAY << 12) | max(0, min(padding, 0xFFF))).to_bytes(3, "big")
    frame[lame + 28 : lame + 32] = struct.pack(">I", len(stream) + size)
    frame[lame + 34 : lame + 36] = struct.pack(">H", _crc16(bytes(frame[: lame + 34])))
    return bytes(frame)


def _frame_size(header: bytes) -> int:
    """Bytes in an MPEG-1 layer III frame from header bytes 1..3."""
    kbps, rate = _MPEG1_KBPS[header[1] >> 4], _MPEG1_RATES[(header[1] >> 2) & 0x3]
    return 144_000 * kbps // rate + ((header[1] >> 1) & 0x1)


def _count_frames(stream: bytes) -> int:
    frames, offset = 0, 0
    while offset + 4 <= len(stream) and stream[offset] == 0xFF:
        offset += _frame_size(stream[offset + 1 : offset + 4])
        frames += 1
    return frames


def _crc16(data: bytes) -> int:
    """CRC-16 (polynomial 0x8005, reflected, initial 0), as LAME checks its tag."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def write_tags(path: Path, tags: Tags) -> None:
    """ID3 title, artist, prompt (comment), lyrics (USLT, and SYLT in milliseconds when timed), seed and song id."""
    from mutagen.id3 import COMM, ID3, SYLT, TIT2, TPE1, TXXX, USLT, ID3NoHeaderError

    try:
        id3 = ID3(str(path))
    except ID3NoHeaderError:
        id3 = ID3()
    id3.add(TIT2(encoding=3, text=tags.title))
    id3.add(TPE1(encoding=3, text=tags.artist))
    id3.add(COMM(encoding=3, lang="eng", desc="prompt", text=tags.prompt))
    if tags.lyrics:
        id3.add(USLT(encoding=3, lang="eng", desc="", text=tags.lyrics))
    if tags.lyrics and tags.timing is not None and tags.timing.lines:
        # format 2: times in milliseconds; type 1: lyrics (players show them line by line)
        id3.add(SYLT(encoding=3, lang="eng", format=2, type=1, desc="", text=lrc.sylt_entries(tags.timing)))
    id3.add(TXXX(encoding=3, desc="songbot_seed", text=str(tags.seed)))
    id3.add(TXXX(encoding=3, desc="songbot_song_id", text=str(tags.song_id)))
    id3.save(str(path))


def read_tags(path: Path) -> dict[str, str]:
    """The songbot fields of an MP3's tag (title, prompt, lyrics, seed, song_id)."""
    from mutagen.id3 import ID3

    id3 = ID3(str(path))
    out = {"title": str(id3.get("TIT2", "")), "artist": str(id3.get("TPE1", ""))}
    for frame in id3.getall("COMM"):
        out["prompt"] = str(frame.text[0]) if frame.text else ""
    for frame in id3.getall("USLT"):
        out["lyrics"] = frame.text
    for frame in id3.getall("TXXX"):
        out[frame.desc.removeprefix("songbot_")] = str(frame.text[0])
    return out


def fit_mp3(path: Path, max_bytes: int) -> Path:
    """A version of the MP3 at `path` no larger than `max_bytes` (the file itself if it fits).

    The smaller copy is re-encoded at lower bitrates, keeps the tags, and is written beside
    the original as `<name>.fit<bytes>.mp3`.

    Raises:
        BadAudio: not even the lowest bitrate fits.
    """
    if path.stat().st_size <= max_bytes:
        return path
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    target = path.with_name(f"{path.stem}.fit{max_bytes}.mp3")
    for kbps in FIT_KBPS:
        encode_mp3(audio, target, kbps=kbps, rate=rate)
        _copy_tags(path, target)  # before measuring: the tag counts towards the limit too
        if target.stat().st_size <= max_bytes:
            return target
    raise BadAudio("The song is too large to upload here, even at the lowest quality.")


def _copy_tags(source: Path, target: Path) -> None:
    from mutagen.id3 import ID3

    ID3(str(source)).save(str(target))


def duration_of(path: Path) -> float:
    """Seconds of audio in a file."""
    info = sf.info(str(path))
    return float(info.frames) / float(info.samplerate)
