"""Audio files: decode uploads, resample, encode and tag MP3s, shrink them to fit a limit.

Everything the user can upload ends in either a float32 array (samples, 2) at 48 kHz or a
`BadAudio` error with one sentence; no traceback reaches a person.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf

from storage.errors import BadAudio

SAMPLE_RATE = 48_000
SILENCE_PEAK = 1e-4
# libsndfile's MP3 "compression level": 0 is the highest bitrate (320 kb/s), 0.99 about 32 kb/s.
QUALITY_STEPS = (0.0, 0.35, 0.55, 0.75, 0.9, 0.99)  # 1.0 is refused by libsndfile
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"%PDF", b"PK\x03\x04", b"RIFF\x00\x00\x00\x00WEBP")


@dataclass(frozen=True)
class Tags:
    """What goes into the MP3's ID3 tag."""

    title: str
    prompt: str
    lyrics: str
    seed: int
    song_id: int
    artist: str = "songbot"


def decode(data: bytes, max_duration_s: float, filename: str | None = None) -> np.ndarray:
    """Decode an uploaded file to float32 (samples, 2) at 48 kHz.

    Raises:
        BadAudio: empty, not audio, corrupt or truncated, silent, or longer than `max_duration_s`.
    """
    if not data:
        raise BadAudio("That file is empty, so there is nothing to cover.")
    if data.startswith(IMAGE_MAGIC):
        raise BadAudio("That file is not audio (it looks like a picture or a document); send a song or a voice note.")
    audio, rate = _decode_any(data, max_duration_s)
    if audio.shape[0] == 0:
        raise BadAudio("That file holds no sound I could read; it may be truncated.")
    audio = to_stereo(audio)
    if not np.isfinite(audio).all() or float(np.abs(audio).max()) < SILENCE_PEAK:
        raise BadAudio("That recording is silent, so there is nothing to cover.")
    return resample(audio, rate, SAMPLE_RATE)


def too_long(max_duration_s: float) -> BadAudio:
    """The refusal of a recording longer than the limit."""
    return BadAudio(f"That recording is too long; I can cover up to {span(max_duration_s)}.")


def span(seconds: float) -> str:
    """`600` → `10 minutes`, `90` → `90 seconds`."""
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    return f"{seconds:g} seconds"


def _decode_any(data: bytes, max_duration_s: float) -> tuple[np.ndarray, int]:
    """Decode with libsndfile, else FFmpeg; the length is checked before all of it is in memory."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            # A two-hour upload is refused from its header, never decoded (it would take gigabytes).
            if handle.frames / handle.samplerate > max_duration_s:
                raise too_long(max_duration_s)
            return handle.read(dtype="float32", always_2d=True), int(handle.samplerate)
    except BadAudio:
        raise
    except Exception:  # noqa: BLE001 - libsndfile raises several types; PyAV gets the next try
        pass
    try:
        return _decode_with_av(data, max_duration_s)
    except BadAudio:
        raise
    except Exception as error:
        raise BadAudio("I couldn't read that file as audio; it may be corrupt or in an unusual format.") from error


def _decode_with_av(data: bytes, max_duration_s: float) -> tuple[np.ndarray, int]:
    """m4a, aac, mp4, webm, ogg/opus voice notes: anything FFmpeg reads, stopped once it runs too long."""
    import av

    limit = int(max_duration_s * SAMPLE_RATE)
    with av.open(io.BytesIO(data), mode="r") as container:
        resampler = av.AudioResampler(format="flt", layout="stereo", rate=SAMPLE_RATE)
        chunks, samples = [], 0
        # Packed float ("flt") frames come out as one row of interleaved samples.
        for frame in container.decode(audio=0):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1, 2))
                samples += chunks[-1].shape[0]
            if samples > limit:
                raise too_long(max_duration_s)
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1, 2))
    if not chunks:
        return np.zeros((0, 2), np.float32), SAMPLE_RATE
    if samples > limit:
        raise too_long(max_duration_s)
    return np.concatenate(chunks).astype(np.float32), SAMPLE_RATE


def to_stereo(audio: np.ndarray) -> np.ndarray:
    """Mono becomes two equal channels; more than two are folded down to the first two."""
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.shape[1] == 1:
        return np.repeat(audio, 2, axis=1).astype(np.float32)
    return audio[:, :2].astype(np.float32)


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Polyphase resampling from `rate` to `target` Hz."""
    if rate == target:
        return audio.astype(np.float32)
    from scipy.signal import resample_poly

    divisor = gcd(rate, target)
    return resample_poly(audio, target // divisor, rate // divisor, axis=0).astype(np.float32)


def encode_mp3(audio: np.ndarray, path: Path, tags: Tags | None = None, quality: float = 0.0,
               rate: int = SAMPLE_RATE) -> Path:
    """Write `audio` as a constant-bitrate MP3 (quality 0 = best) and tag it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    clipped = np.clip(audio, -1.0, 1.0)
    sf.write(str(path), clipped, rate, format="MP3", bitrate_mode="CONSTANT", compression_level=quality)
    if tags is not None:
        write_tags(path, tags)
    return path


def write_tags(path: Path, tags: Tags) -> None:
    """ID3 title, artist, prompt (comment), lyrics, seed and song id."""
    from mutagen.id3 import COMM, ID3, TIT2, TPE1, TXXX, USLT, ID3NoHeaderError

    try:
        id3 = ID3(str(path))
    except ID3NoHeaderError:
        id3 = ID3()
    id3.add(TIT2(encoding=3, text=tags.title))
    id3.add(TPE1(encoding=3, text=tags.artist))
    id3.add(COMM(encoding=3, lang="eng", desc="prompt", text=tags.prompt))
    if tags.lyrics:
        id3.add(USLT(encoding=3, lang="eng", desc="", text=tags.lyrics))
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
    for quality in QUALITY_STEPS[1:]:
        encode_mp3(audio, target, quality=quality, rate=rate)
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
