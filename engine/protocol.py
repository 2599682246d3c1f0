"""The contract between the engine worker and its backends.

A request carries the job's typed `JobSpec`; a result carries the typed results of
`storage/contract/results.py` (`TrackMeta`, `ModelInfo`) and the `Plan`, which the worker stores as they are.

A backend turns a batch of validated requests into audio. It never touches the
database, the blob directory or a chat platform: the worker does that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from storage.contract.results import LyricTiming, ModelInfo, StyleRef, TakeScore, TrackMeta
from storage.contract.spec import Description, JobSpec, Plan
from storage.contract.types import JobView
from storage.contract.values import SAMPLE_RATE

# progress(job_id or None for the whole batch, stage, percent 0..100)
Progress = Callable[[int | None, str, float], None]


@dataclass(frozen=True)
class TrackRequest:
    """One track to generate, as the worker hands it to a backend: the job's typed spec and its audio.

    What to make is the job's `JobSpec` itself (`storage/contract/spec.py`), read by its fields; this adds
    only what the engine has and the spec does not: the job's id, kind and seed, the decoded audio
    and a sentence when the request alone failed.

    Args:
        job_id: The job's id (the song id users see as ``#<id>``).
        kind: ``song``, ``cover``, ``reroll``, ``repaint``, ``extend``, ``describe`` or ``timing`` (a song's lyrics
            timed again).
        spec: What to make. A planning stage gives it a `Plan` (``with_plan``): the plan wins over
            the spec's own caption, lyrics and metadata, so a re-roll repeats the planned song.
        seed: uint32 seed; the same request and seed give the same audio.
        source_audio: Covers and descriptions: float32 array (samples, 2) at 48 kHz.
        base_audio: Edits: the base song's audio, float32 (samples, 2) at 48 kHz.
        base_latents: Edits: the base song's stored latents [frames, 64] (acestep), when kept; `timing`
            jobs: the timed song's own latents.
        reference_audio: A song "like" a clip: the clip, float32 (samples, 2) at 48 kHz, whose
            sound (timbre) the song takes.
        error: Set by a backend's planning stage when this request alone cannot be made
            (a sentence); ``generate`` then returns it as the track's ``error``.
    """

    job_id: int
    kind: str
    spec: JobSpec
    seed: int
    source_audio: np.ndarray | None = None
    base_audio: np.ndarray | None = None
    base_latents: np.ndarray | None = None
    reference_audio: np.ndarray | None = None
    error: str | None = None

    @property
    def plan(self) -> Plan | None:
        """The LM plan to follow: stored (a re-roll) or made by a planning stage; None to plan afresh."""
        return self.spec.plan

    def with_plan(self, plan: Plan) -> TrackRequest:
        """This request following `plan` (the spec's other fields unchanged)."""
        return replace(self, spec=self.spec.model_copy(update={"plan": plan}))


def request_for(job: JobView, source_audio: np.ndarray | None = None, **base: np.ndarray | None) -> TrackRequest:
    """The request for a claimed job: its typed spec, seed and audio.

    A song "like" a clip gets its source as the reference audio; an edit gets its base song's
    audio and latents (`base_audio`, `base_latents`) from the worker.
    """
    reference = None
    if job.spec.like:
        source_audio, reference = None, source_audio
    return TrackRequest(
        job_id=job.id,
        kind=job.kind,
        spec=job.spec,
        seed=job.seed,
        source_audio=source_audio,
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
        metadata: The metadata as used (bpm, key, time signature, language, length).
        plan: The LM plan to store for exact re-rolls, or None.
        model: The model that made it: everything else needed to regenerate (backend, model ids,
            steps, shift, dtype).
        notice: A sentence shown with the result (the sketch backend says it is
            a sketch, not ACE-Step), or None.
        latents: The model's latents of the song [frames, 64], kept so that a repaint or an
            extend of it keeps its samples exactly; None for a backend without latents.
        error: A sentence when this track failed (invalid numbers...): its job alone
            fails with it, and ``audio`` is empty. The other tracks of the batch are
            delivered.
        timing: When each sung line starts (songs with lyrics), or None.
        score: The take's score against its request (`best=N` takes), or None.
        style: The LoRA style the DiT was run with, or None.
    """

    job_id: int
    audio: np.ndarray
    seed: int
    title: str
    caption: str
    lyrics: str
    metadata: TrackMeta = field(default_factory=TrackMeta)
    plan: Plan | None = None
    model: ModelInfo = field(default_factory=ModelInfo)
    notice: str | None = None
    sample_rate: int = SAMPLE_RATE
    latents: np.ndarray | None = None
    error: str | None = None
    timing: LyricTiming | None = None
    score: TakeScore | None = None
    style: StyleRef | None = None


class Generator(Protocol):
    """A loaded backend. Loading happens once, in the constructor.

    Its planning stage (``plan``) runs on the next batch while this one generates; a backend
    without one returns the batch as it is and says so with ``plans_ahead = False``, so the
    worker plans one batch ahead, not several.
    """

    name: str
    max_batch: int
    plans_ahead: bool

    def plan(self, batch: list[TrackRequest], progress: Progress) -> list[TrackRequest]:
        """The batch with the plans its songs need attached (and any request that failed alone marked)."""
        ...

    def generate(self, batch: list[TrackRequest], progress: Progress) -> list[GeneratedTrack]:
        """Generate one track per request, in order.

        A track that fails alone (invalid numbers) comes back with ``error`` set.

        Raises:
            storage.contract.errors.GenerationError: with a sentence for the user, when the
                batch cannot be generated at all.
        """
        ...

    def describe(self, request: TrackRequest, progress: Progress) -> Description:
        """What a ``describe`` request's source audio sounds like; no track is made.

        The reading is a `Plan` without codes (caption, lyrics, bpm, key, time signature, language)
        whose duration is the recording's own length, with who read it (``Description.backend``).

        Raises:
            storage.contract.errors.GenerationError: with a sentence for the user.
        """
        ...

    def score(self, request: TrackRequest, track: GeneratedTrack, progress: Progress) -> TakeScore:
        """How well a finished take matches its request (the takes of a `best=N` request are compared by it).

        The worker calls it once per take of a `best=N` request, after the take is made, and stores the
        score with the track; a higher `total` is a better take. The score depends on the take and its
        request only (never on the other takes), so each take is scored on its own.
        """
        ...

    def time_lyrics(self, request: TrackRequest, progress: Progress) -> LyricTiming | None:
        """When each sung line of a finished song starts: a `timing` job, for a song stored without its timing.

        The request carries the song's spec (its plan, caption, lyrics, metadata and length, as made) and
        its stored latents in ``base_latents``; nothing new is generated.

        Returns:
            The timing, or None when the song has no sung lines.

        Raises:
            storage.contract.errors.GenerationError: with a sentence for the user, when it cannot be timed.
        """
        ...
