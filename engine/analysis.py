"""A recording described by simple signal analysis: its length, a tempo estimate, a key guess by chroma.

The sketch backend's `/describe` (no model weights) and the acestep backend without a planner LM use it,
so that the bot works end to end on any machine. It is a guess and the description says so (its
`backend` is not `acestep`). Pure numpy, deterministic, and cheap: it reads at most `ANALYSED_S` seconds
of a mono mix resampled by block averaging to about 12 kHz.
"""

from __future__ import annotations

import numpy as np

from storage.contract.spec import Description, Plan
from storage.contract.values import BPM_MAX, BPM_MIN

ANALYSIS_RATE = 12_000
ANALYSED_S = 120.0
FRAME = 1024
HOP = 256
TEMPO_RANGE = (60.0, 200.0)  # what a beat tracker can tell apart; doubled or halved tempos fold into it
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl–Kessler key profiles: how strongly each scale degree belongs to a major or a minor key.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# Long frames for chroma (3 Hz bins at 12 kHz), from where semitones are several bins apart.
CHROMA_FRAME = 4096
PITCH_LOW_HZ, PITCH_HIGH_HZ = 100.0, 2000.0


def describe_audio(audio: np.ndarray, rate: int, backend: str) -> Description:
    """A description of `audio` (samples × channels, or mono) from its length, tempo and chroma.

    Args:
        audio: The recording, float samples in [-1, 1].
        rate: Its sample rate.
        backend: Who is describing (`sketch`, or `acestep` without its LM): shown as the reader.
    """
    seconds = audio.shape[0] / rate
    mono = _mono(audio, rate)
    bpm = estimate_bpm(mono, ANALYSIS_RATE)
    key = estimate_key(mono, ANALYSIS_RATE)
    pace = "slow" if bpm < 90 else "mid-tempo" if bpm < 125 else "fast"
    caption = f"a {pace} piece in {key} at about {bpm} bpm" if key else f"a {pace} piece at about {bpm} bpm"
    plan = Plan(caption=caption, lyrics="", bpm=bpm, key=key, time_signature=4, duration_s=round(seconds, 2))
    return Description(plan=plan, backend=backend)


def _mono(audio: np.ndarray, rate: int) -> np.ndarray:
    """The first `ANALYSED_S` seconds as one channel at about `ANALYSIS_RATE` (block averages)."""
    mono = np.asarray(audio, dtype=np.float32)
    mono = mono[: int(ANALYSED_S * rate)]
    if mono.ndim == 2:
        mono = mono.mean(axis=1)
    step = max(1, round(rate / ANALYSIS_RATE))
    usable = mono.shape[0] - mono.shape[0] % step
    return np.asarray(mono[:usable].reshape(-1, step).mean(axis=1), dtype=np.float32)


def _spectrogram(mono: np.ndarray, frame: int = FRAME, hop: int = HOP) -> np.ndarray:
    """Magnitudes [frames, bins] of Hann-windowed frames; one frame for a clip shorter than a frame."""
    if mono.shape[0] < frame:
        mono = np.pad(mono, (0, frame - mono.shape[0]))
    count = 1 + (mono.shape[0] - frame) // hop
    index = np.arange(frame)[None, :] + hop * np.arange(count)[:, None]
    return np.abs(np.fft.rfft(mono[index] * np.hanning(frame), axis=1))


def estimate_bpm(mono: np.ndarray, rate: int) -> int:
    """The tempo, in beats per minute, that best repeats the onset envelope (autocorrelation).

    A recording without a pulse gets the middle of `TEMPO_RANGE`'s usual tempos (120): a guess is
    all this can be, and the value stays in the model's range.
    """
    flux = np.maximum(np.diff(np.log1p(_spectrogram(mono)), axis=0), 0.0).sum(axis=1)
    flux = flux - flux.mean() if flux.size else flux
    frames_per_s = rate / HOP
    shortest = int(frames_per_s * 60.0 / TEMPO_RANGE[1])
    longest = int(frames_per_s * 60.0 / TEMPO_RANGE[0])
    if flux.size <= longest + 1 or not np.any(flux):
        return 120
    lags = np.arange(shortest, longest + 1)
    correlation = np.array([np.dot(flux[:-lag], flux[lag:]) for lag in lags])
    # A beat every n frames also repeats every 2n: a prior around 120 bpm (an octave wide) prefers the beat
    # to its half tempo, which a lag that falls between frames would otherwise win.
    tempos = 60.0 * frames_per_s / lags
    prior = np.exp(-0.5 * np.log2(tempos / 120.0) ** 2)
    best = tempos[int(np.argmax(correlation * prior))]
    return int(min(max(round(best), BPM_MIN), BPM_MAX))


def estimate_key(mono: np.ndarray, rate: int) -> str | None:
    """The key whose profile best matches the recording's chroma (`F# minor`), or None for no pitch."""
    spectrum = _spectrogram(mono, CHROMA_FRAME, CHROMA_FRAME // 2).sum(axis=0)
    freqs = np.fft.rfftfreq(CHROMA_FRAME, 1.0 / rate)
    audible = (freqs >= PITCH_LOW_HZ) & (freqs <= PITCH_HIGH_HZ)
    if not np.any(spectrum[audible] > 0):
        return None
    classes = np.round(12 * np.log2(freqs[audible] / 440.0) + 9).astype(int) % 12  # A = 9
    chroma = np.bincount(classes, weights=spectrum[audible], minlength=12)
    best, best_score = None, -np.inf
    for root in range(12):
        for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
            score = float(np.corrcoef(chroma, np.roll(profile, root))[0, 1])
            if score > best_score:
                best, best_score = f"{PITCH_CLASSES[root]} {mode}", score
    return best
