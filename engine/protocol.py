"""The contract between the engine worker and its backends.

A backend turns a batch of validated requests into audio. It never touches the
database, the blob directory or a chat platform: the worker does that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from storage.spec import Edit
from storage.types import JobView
from storage.values import DEFAULT_COVER_STRENGTH, SAMPLE_RATE

# progress(job_id or None for the whole batch, stage, percent 0..100)
Progress = Callable[[int | None, str, float], None]


@dataclass(frozen=True)
class TrackRequest:
    """One track to generate, as the worker hands it to a backend.

    Args:
        job_id: The job's id (the song id users see as ``#<id>``).
        kind: ``song``, ``cover``, ``reroll``, ``repaint`` or ``extend``.
        caption: The user's description (song) or style (cover).
        lyrics: Lyrics; empty means instrumental unless a plan supplies them.
        instrumental: The user asked for no vocals.
        duration_s: Length of the result in seconds.
        seed: uint32 seed; the same request and seed give the same audio.
        language: ISO code such as ``en``, or None for the model's choice.
        bpm: Beats per minute, or None.
        key: Key and scale such as ``C major``, or None.
        time_signature: Beats per bar (2, 3, 4 or 6), or None.
        source_audio: Covers: float32 array (samples, 2) at 48 kHz.
        strength: Covers: share of the sampling steps that follow the source (0..1).
        plan: A stored LM plan (caption, lyrics, metadata, audio codes) to reuse
            exactly on a re-roll, or None to plan afresh.
        duration_given: The user chose the duration; when False a planner may pick the
            length itself (``duration_s`` is then the default, used without a planner).
        new_take: Draw new audio codes for ``plan`` with this seed (a re-roll as a new take).
        edit: A repaint or an extend: regenerate ``edit.start_s`` .. ``edit.end_s`` of the base song
            and keep the rest of its samples.
        base_audio: Edits: the base song's audio, float32 (samples, 2) at 48 kHz.
        base_latents: Edits: the base song's stored latents [frames, 64] (acestep), when kept.
        reference_audio: A song "like" a clip: the clip, float32 (samples, 2) at 48 kHz, whose
            sound (timbre) the song takes.
        error: Set by a backend's planning stage when this request alone cannot be made
            (a sentence); ``generate`` then returns it as the track's ``error``.
    """

    job_id: int
    kind: str
    caption: str
    lyrics: str
    instrumental: bool
    duration_s: float
    seed: int
    language: str | None = None
    bpm: int | None = None
    key: str | None = None
    time_signature: int | None = None
    source_audio: np.ndarray | None = None
    strength: float = DEFAULT_COVER_STRENGTH
    plan: dict[str, Any] | None = None
    duration_given: bool = True
    new_take: bool = False
    edit: Edit | None = None
    base_audio: np.ndarray | None = None
    base_latents: np.ndarray | None = None
    reference_audio: np.ndarray | None = None
    error: str | None = None


def request_for(job: JobView, source_audio: np.ndarray | None = None, **base: np.ndarray | None) -> TrackRequest:
    """The request for a claimed job: each field is its typed spec's (`storage/spec.py`), nothing guessed.

    A song "like" a clip gets its source as the reference audio; an edit gets its base song's
    audio and latents (`base_audio`, `base_latents`) from the worker.
    """
    spec = job.spec
    if spec.like:
        source_audio, reference = None, source_audio
    else:
        reference = None
    return TrackRequest(
        job_id=job.id,
        kind=job.kind,
        caption=spec.caption,
        lyrics=spec.lyrics,
        instrumental=spec.instrumental,
        duration_s=spec.duration_s,
        seed=job.seed,
        language=spec.language,
        bpm=spec.bpm,
        key=spec.key,
        time_signature=spec.time_signature,
        source_audio=source_audio,
        strength=spec.strength,
        plan=spec.plan.stored() if spec.plan is not None else None,
        duration_given=spec.duration_given,
        new_take=spec.new_take,
        edit=spec.edit,
        base_audio=base.get("base_audio"),
        base_latents=base.get("base_latents"),
        reference_audio=reference,
    )


@dataclass
class GeneratedTrack:
    """What a backend returns for one request.

    Args:
        job_id: The request's job id.
        audio: float32 array (samples, 2) at ``sample_rate``, within [-1, 1].
        seed: The seed actually used.
        title: A short title for the song.
        caption: The final caption the model was conditioned on.
        lyrics: The final lyrics ("" for instrumental).
        metadata: bpm, key, time_signature, language, duration_s as used.
        plan: The LM plan to store for exact re-rolls, or None.
        model: Everything else needed to regenerate: backend, model ids, steps,
            shift, dtype.
        notice: A sentence shown with the result (the sketch backend says it is
            a sketch, not ACE-Step), or None.
        latents: The model's latents of the song [frames, 64], kept so that a repaint or an
            extend of it keeps its samples exactly; None for a backend without latents.
        error: A sentence when this track failed (invalid numbers...): its job alone
            fails with it, and ``audio`` is empty. The other tracks of the batch are
            delivered.
    """

    job_id: int
    audio: np.ndarray
    seed: int
    title: str
    caption: str
    lyrics: str
    metadata: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] | None = None
    model: dict[str, Any] = field(default_factory=dict)
    notice: str | None = None
    sample_rate: int = SAMPLE_RATE
    latents: np.ndarray | None = None
    error: str | None = None


class Generator(Protocol):
    """A loaded backend. Loading happens once, in the constructor."""

    name: str
    max_batch: int

    def generate(self, batch: list[TrackRequest], progress: Progress) -> list[GeneratedTrack]:
        """Generate one track per request, in order.

        A track that fails alone (invalid numbers) comes back with ``error`` set.

        Raises:
            storage.errors.GenerationError: with a sentence for the user, when the
                batch cannot be generated at all.
        """
        ...
