"""The sketch backend: a small procedural synthesizer for machines without model weights.

It is deterministic from the seed, honours duration, bpm and key, writes 48 kHz stereo, and
says in every result that it is a sketch, not ACE-Step. It exists so that the whole service
(queue, engine loop, delivery, every chat adapter) runs and is tested on any machine.

A song with lyrics gets a hummed lead line where each sung line goes (`place_lines`: bar-aligned,
from the lyrics, length and bpm alone), so its timing is true of its own audio and can be made
again on request (`time_lyrics`) from the song's spec.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable

import numpy as np

from engine.analysis import describe_audio
from engine.protocol import GeneratedTrack, Progress, TrackRequest
from engine.splice import splice
from storage.contract.errors import GenerationError
from storage.contract.results import LyricTiming, ModelInfo, TakeScore, TimedLine, TrackMeta, title_from_caption
from storage.contract.spec import Description, JobSpec
from storage.contract.values import SAMPLE_RATE
from storage.styles import STYLES_NEED_ACESTEP

NOTICE = "This is a sketch from the built-in synthesizer, not ACE-Step: no model weights are installed."
# The sketch has no voice: a cover given new lyrics says that they were kept, not sung.
UNSUNG = " It sings no words: the cover's new lyrics are kept with it, not sung."
NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
FLATS = {"Db": "C#", "Eb": "D#", "Gb": "F#", "Ab": "G#", "Bb": "A#"}
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4), (0, 3, 0, 4))
CHUNK_S = 5.0
SECTION_TAG = re.compile(r"^\s*\[[^\]]*\]\s*$")  # `[verse]`, `[chorus]`: structure, not sung
HUM_LEVEL = 0.25
HUM_FADE_S = 0.08


class SketchGenerator:
    """A `Generator` that synthesizes a simple arrangement in numpy."""

    name = "sketch"
    plans_ahead = False

    def __init__(self, max_batch: int = 4) -> None:
        self.max_batch = max_batch

    def generate(self, batch: list[TrackRequest], progress: Progress) -> list[GeneratedTrack]:
        """Synthesize each request in turn, reporting progress per chunk."""
        return [self._one(request, progress) for request in batch]

    def plan(self, batch: list[TrackRequest], progress: Progress) -> list[TrackRequest]:
        """No planning stage: the sketch follows each spec as it is."""
        return batch

    def describe(self, request: TrackRequest, progress: Progress) -> Description:
        """A guess at the recording from simple analysis (length, tempo, key by chroma); no model runs."""
        if request.source_audio is None:
            raise GenerationError("There is no recording to describe; please send it again.")
        progress(request.job_id, "listening", 0.0)
        return describe_audio(request.source_audio, SAMPLE_RATE, self.name)

    def score(self, request: TrackRequest, track: GeneratedTrack, progress: Progress) -> TakeScore:
        """A stand-in for the official score, so that `best=N` works without weights (see `sketch_score`)."""
        return sketch_score(track, request.spec.best_of)

    def time_lyrics(self, request: TrackRequest, progress: Progress) -> LyricTiming | None:
        """When each sung line of the request's song starts: where `generate` hummed it (None: no lyrics)."""
        progress(request.job_id, "timing", 100.0)
        bpm, _ = sketch_meta(request.spec)
        return place_lines(request.spec.lyrics, sung_span_s(request.spec), bpm)

    def _one(self, request: TrackRequest, progress: Progress) -> GeneratedTrack:
        spec, rng = request.spec, np.random.default_rng(request.seed)
        if spec.style is not None:  # the bot refuses styles at submit when it runs the sketch; a job queued before
            empty = np.zeros((0, 2), dtype=np.float32)
            title = title_from_caption(spec.caption, request.kind)
            return GeneratedTrack(
                request.job_id, empty, request.seed, title, spec.caption, spec.lyrics, error=STYLES_NEED_ACESTEP
            )
        bpm, key = sketch_meta(spec)
        audio = synthesize(spec.duration_s, bpm, key, rng, lambda pct: progress(request.job_id, "generating", pct))
        timing = place_lines(spec.lyrics, sung_span_s(spec), bpm)
        if timing is not None:
            audio = hum(audio, timing, key)
        if request.source_audio is not None:
            audio = blend_with_source(audio, request.source_audio, spec.strength)
        if request.reference_audio is not None:
            audio = colour_like(audio, request.reference_audio)
        if spec.edit is not None and request.base_audio is not None:
            # Repaint and extend: the new take's samples in the part asked for, the base song's elsewhere.
            audio = splice(request.base_audio, audio, spec.edit.start_s, spec.edit.end_s)
        return GeneratedTrack(
            job_id=request.job_id,
            audio=audio,
            seed=request.seed,
            title=title_from_caption(spec.caption, request.kind),
            caption=spec.caption,
            lyrics=spec.lyrics,
            metadata=TrackMeta(
                bpm=bpm,
                key=key,
                time_signature=spec.time_signature or 4,
                language=spec.language or "",
                duration_s=spec.duration_s,
            ),
            model=ModelInfo(backend=self.name),
            notice=NOTICE + UNSUNG if request.source_audio is not None and spec.lyrics else NOTICE,
            timing=timing,
        )


def sketch_meta(spec: JobSpec) -> tuple[int, str]:
    """The bpm and key: the request's, else drawn from its caption, not its seed.

    A re-roll keeps the caption and draws a new seed; the README promises that it keeps bpm and key,
    so only the arrangement (progression, voicing) follows the seed.
    """
    rng = np.random.default_rng(zlib.crc32(spec.caption.encode()))
    bpm = spec.bpm or int(rng.integers(70, 140))
    key = spec.key or f"{NOTE_NAMES[int(rng.integers(0, 12))]} {('major', 'minor')[int(rng.integers(0, 2))]}"
    return bpm, key


def sung_span_s(spec: JobSpec) -> float:
    """How much of the song its lines are shared over: all of it, but an extension adds no words.

    An extend keeps its base song's samples (and so its hummed lines) and continues without words; a
    repaint keeps the song's length, lyrics and bpm, so its lines fall where the base song's did.
    """
    if spec.edit is not None and spec.edit.task == "extend":
        return spec.edit.start_s
    return spec.duration_s


def sung_lines(lyrics: str) -> list[str]:
    """The lines of the lyrics that are sung: not blank, not a section tag."""
    return [line.strip() for line in lyrics.splitlines() if line.strip() and not SECTION_TAG.match(line)]


def place_lines(lyrics: str, duration_s: float, bpm: int) -> LyricTiming | None:
    """Where the sketch sings each line: after a bar of intro, the song before its last bar shared out, on beats.

    Returns None when nothing is sung (no lyrics, or only section tags).
    """
    lines = sung_lines(lyrics)
    if not lines:
        return None
    beat = 60.0 / bpm
    start, stop = 4 * beat, duration_s - 4 * beat
    if stop - start < len(lines) * beat:  # too short for an intro and an outro: use the whole song
        start, stop = 0.0, duration_s
    share = (stop - start) / len(lines)
    timed = []
    for index, text in enumerate(lines):
        begin = start + beat * round(index * share / beat)
        end = min(begin + 0.85 * share, duration_s)
        timed.append(TimedLine(start_s=round(begin, 3), end_s=round(end, 3), text=text))
    return LyricTiming(lines=tuple(timed))


def hum(audio: np.ndarray, timing: LyricTiming, key: str) -> np.ndarray:
    """A soft lead tone over each timed line (a note of the key's scale per line), so the timing is heard."""
    root, scale = parse_key(key)
    out = audio.copy()
    fade = int(HUM_FADE_S * SAMPLE_RATE)
    for index, line in enumerate(timing.lines):
        first, last = round(line.start_s * SAMPLE_RATE), min(audio.shape[0], round(line.end_s * SAMPLE_RATE))
        if last - first <= 2 * fade:
            continue
        t = np.arange(first, last) / SAMPLE_RATE
        envelope = np.ones(last - first, np.float32)
        envelope[:fade] = np.linspace(0, 1, fade)
        envelope[-fade:] = np.linspace(1, 0, fade)
        tone = _tone(_freq(root, scale, 7 + (0, 2, 4, 2)[index % 4]), t, 0.3) * envelope * HUM_LEVEL
        out[first:last] += tone.astype(np.float32)[:, None]
    peak = float(np.abs(out).max()) or 1.0
    return (out / max(peak, 1.0)).astype(np.float32)


def synthesize(
    duration_s: float,
    bpm: int,
    key: str,
    rng: np.random.Generator,
    on_progress: Callable[[float], None] = lambda pct: None,
) -> np.ndarray:
    """Chords, bass, an arpeggio and drums in `key` at `bpm`: float32 (samples, 2)."""
    total = round(duration_s * SAMPLE_RATE)
    root, scale = parse_key(key)
    progression = PROGRESSIONS[int(rng.integers(0, len(PROGRESSIONS)))]
    voice = {
        "bright": float(rng.uniform(0.2, 0.8)),
        "arp": int(rng.integers(2, 5)),
        "swing": float(rng.uniform(0, 0.2)),
    }
    beat = 60.0 / bpm
    out = np.zeros((total, 2), np.float32)
    chunk = int(CHUNK_S * SAMPLE_RATE)
    for start in range(0, total, chunk):
        stop = min(total, start + chunk)
        t = np.arange(start, stop) / SAMPLE_RATE
        out[start:stop] = _render(t, beat, root, scale, progression, voice)
        on_progress(100.0 * stop / total)
    fade = min(total // 4, SAMPLE_RATE)
    out[:fade] *= np.linspace(0, 1, fade, dtype=np.float32)[:, None]
    out[total - fade :] *= np.linspace(1, 0, fade, dtype=np.float32)[:, None]
    return out


def _render(
    t: np.ndarray, beat: float, root: int, scale: tuple[int, ...], progression: tuple[int, ...], voice: dict[str, float]
) -> np.ndarray:
    bar = np.floor(t / (4 * beat)).astype(int)
    degree = np.asarray(progression)[bar % len(progression)]
    chord = [_freq(root, scale, degree + step) for step in (0, 2, 4)]
    pad = sum(_tone(f, t, voice["bright"]) for f in chord) / 3.0
    bass = _tone(_freq(root, scale, degree) / 4, t, 0.1) * _pluck(t, beat, 0.0)
    step = beat / voice["arp"]
    index = np.floor(t / step).astype(int) % 3
    arp = _tone(np.choose(index, chord) * 2, t, voice["bright"]) * _pluck(t, step, voice["swing"])
    kick = np.sin(2 * np.pi * 55 * (t % beat)) * np.exp(-(t % beat) * 18)
    left = 0.30 * pad + 0.35 * bass + 0.22 * arp + 0.45 * kick
    right = 0.30 * pad + 0.35 * bass + 0.12 * arp + 0.45 * kick + 0.1 * _tone(chord[1] * 2, t, 0.0)
    return (0.6 * np.stack([left, right], axis=1)).astype(np.float32)


def _freq(root: int, scale: tuple[int, ...], degree: np.ndarray | int) -> np.ndarray:
    degree = np.asarray(degree)
    semitones = np.asarray(scale)[degree % 7] + 12 * (degree // 7)
    return 220.0 * 2 ** ((root + semitones - 9) / 12)


def _tone(freq: np.ndarray | float, t: np.ndarray, bright: float) -> np.ndarray:
    phase = 2 * np.pi * freq * t
    return np.sin(phase) + bright * 0.5 * np.sin(2 * phase) + bright * 0.25 * np.sin(3 * phase)


def _pluck(t: np.ndarray, period: float, swing: float) -> np.ndarray:
    local = (t + swing * period) % period
    return np.exp(-local / (0.35 * period))


def parse_key(key: str) -> tuple[int, tuple[int, ...]]:
    """`"F# minor"` → (6, MINOR). Unknown names fall back to C major."""
    match = re.match(r"\s*([A-Ga-g])([#b♯♭]?)\s*(major|minor|maj|min|m)?", key or "")
    if not match:
        return 0, MAJOR
    name = match.group(1).upper() + match.group(2).replace("♯", "#").replace("♭", "b")
    name = FLATS.get(name, name)
    root = NOTE_NAMES.index(name) if name in NOTE_NAMES else 0
    minor = (match.group(3) or "").lower() in ("minor", "min", "m")
    return root, MINOR if minor else MAJOR


def blend_with_source(synth: np.ndarray, source: np.ndarray, strength: float) -> np.ndarray:
    """A cover sketch: the source's loudness contour shapes the synth; `strength` keeps more source."""
    length = synth.shape[0]
    source = np.resize(source, (length, 2)) if source.shape[0] < length else source[:length]
    window = SAMPLE_RATE // 20
    energy = np.sqrt(np.convolve((source**2).mean(axis=1), np.ones(window) / window, mode="same"))
    shaped = synth * (energy / (energy.max() + 1e-9))[:, None].astype(np.float32)
    mixed = strength * source + (1.0 - strength) * shaped
    peak = float(np.abs(mixed).max()) or 1.0
    return (mixed / max(peak, 1.0)).astype(np.float32)


def colour_like(synth: np.ndarray, clip: np.ndarray) -> np.ndarray:
    """A song "like" a clip, sketched: the synth's spectrum tilted towards the clip's brightness."""
    mono = clip.mean(axis=1)[: 30 * SAMPLE_RATE]
    spectrum = np.abs(np.fft.rfft(mono))
    freqs = np.fft.rfftfreq(mono.shape[0], 1.0 / SAMPLE_RATE)
    centroid = float((freqs * spectrum).sum() / (spectrum.sum() + 1e-9))
    tilt = float(np.clip(np.log2(max(centroid, 1.0) / 1000.0), -2.0, 2.0)) / 2.0
    bins = np.fft.rfftfreq(synth.shape[0], 1.0 / SAMPLE_RATE)
    gain = np.clip((np.maximum(bins, 20.0) / 1000.0) ** tilt, 0.05, 8.0)[:, None]
    coloured = np.fft.irfft(np.fft.rfft(synth, axis=0) * gain, n=synth.shape[0], axis=0)
    peak = float(np.abs(coloured).max()) or 1.0
    return (coloured * (float(np.abs(synth).max()) / peak)).astype(np.float32)


# The sketch's stand-in score: how steady the beat is at the bpm asked for, and how close the length is.
ENVELOPE_HZ = 100
TEMPO_RANGE_BPM = (40, 240)


def sketch_score(track: GeneratedTrack, best_of: int) -> TakeScore:
    """A deterministic stand-in for the LM's score (the sketch has no LM): not ACE-Step's, and not comparable to it.

    `bpm`: how much of the audio's beat (the autocorrelation of its onset envelope) falls on the
    track's bpm rather than on any other tempo; `duration`: 1 less the relative error of its length.
    The total is their mean. Takes of one request differ in their arrangement (the seed), so they score apart.
    """
    seconds = track.audio.shape[0] / track.sample_rate
    wanted_s = track.metadata.duration_s or seconds
    conditions = {
        "bpm": round(_beat_match(track.audio, track.sample_rate, track.metadata.bpm or 120), 6),
        "duration": round(max(0.0, 1.0 - abs(seconds - wanted_s) / max(wanted_s, 1e-9)), 6),
    }
    total = round(sum(conditions.values()) / len(conditions), 6)
    return TakeScore(total=total, conditions=conditions, best_of=best_of)


def _beat_match(audio: np.ndarray, rate: int, bpm: int) -> float:
    """The onset envelope's autocorrelation at one beat of `bpm`, against its highest over the tempo range."""
    hop = rate // ENVELOPE_HZ
    frames = audio.shape[0] // hop
    if frames < 4 * ENVELOPE_HZ:
        return 0.0
    energy = np.sqrt((audio[: frames * hop].mean(axis=1).reshape(frames, hop) ** 2).mean(axis=1))
    onsets = np.maximum(np.diff(energy), 0.0)
    onsets -= onsets.mean()
    lags = range(round(60 * ENVELOPE_HZ / TEMPO_RANGE_BPM[1]), round(60 * ENVELOPE_HZ / TEMPO_RANGE_BPM[0]) + 1)
    correlation = {lag: float(np.dot(onsets[:-lag], onsets[lag:])) for lag in lags}
    best = max(correlation.values())
    at_bpm = correlation.get(round(60 * ENVELOPE_HZ / bpm), 0.0)
    return max(0.0, at_bpm / best) if best > 0 else 0.0
