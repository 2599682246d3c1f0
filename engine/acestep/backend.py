"""The ``acestep`` backend: turns a batch of TrackRequests into audio with our ACE-Step engine.

Models load once, in the constructor. A request's plan (from the 5 Hz LM planner, or stored for
a re-roll) may supply the caption, lyrics, metadata and ``audio_codes``: a list of 5 Hz FSQ codes
(0..63999, five per second) that become the DiT's context hints, as in the official LM → DiT path.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from engine.acestep import edit
from engine.acestep.checkpoints import DIT_DIR, TEXT_ENCODER_DIR, VAE_DIR
from engine.acestep.config import FRAMES_PER_SECOND
from engine.acestep.pipeline import AceStepPipeline, Song, Track
from engine.acestep.sampler import nearest_shift
from engine.acestep.styles import StyleError, Styles, group_key
from engine.acestep.text import Metas
from engine.protocol import GeneratedTrack, Progress, TrackRequest
from storage.contract.errors import GenerationError
from storage.contract.results import LyricTiming, ModelInfo, StyleRef, TakeScore, TrackMeta, title_from_caption
from storage.contract.spec import Description, Plan
from storage.media.audio import span

STAGES = ("encoding", "generating", "decoding")
# A cover with no style and no LM reading of its source still needs a caption.
COVER_CAPTION = "a cover of the original recording"
log = logging.getLogger("songbot.engine")

T = TypeVar("T")


def pick_device(device: str) -> tuple[torch.device, torch.dtype]:
    """``auto`` → CUDA when present; bf16 on CUDA, fp32 on CPU (fp16 overflows in this DiT)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    chosen = torch.device(device)
    return chosen, torch.bfloat16 if chosen.type == "cuda" else torch.float32


def _planned(planned: T | None, own: T) -> T:
    """The plan's value when it has one, else the request's own."""
    return own if planned is None else planned


def request_to_track(request: TrackRequest) -> Track:
    """Merge a request's spec with its plan (the plan wins, so a re-roll repeats the planned song).

    A plan (``storage.contract.spec.Plan``: caption, lyrics, bpm, key, time_signature, duration_s,
    language and audio_codes, ints 0..63999, five per second of audio) is what the 5 Hz LM planner
    wrote or a stored one read back. Its missing values fall back to the spec's own.
    """
    spec, plan = request.spec, request.plan or Plan()
    lyrics = "" if spec.instrumental else _planned(plan.lyrics, spec.lyrics)
    metas = Metas(
        bpm=_planned(plan.bpm, spec.bpm),
        time_signature=_planned(plan.time_signature, spec.time_signature),
        key=_planned(plan.key, spec.key),
        duration_s=float(_planned(plan.duration_s, spec.duration_s)),
    )
    if request.kind == "cover" and request.source_audio is None:
        raise GenerationError("A cover needs the source audio, and none arrived with the request.")
    edited = spec.edit is not None
    if edited and request.base_audio is None and request.base_latents is None:
        raise GenerationError("The song to change did not arrive with the request; please try again.")
    frames = round(metas.duration_s * FRAMES_PER_SECOND)
    read_cover = request.source_audio is not None and request.plan is not None
    return Track(
        caption=_planned(plan.caption, spec.caption) or COVER_CAPTION,
        lyrics=lyrics,
        language=_planned(plan.language, spec.language) or "unknown",
        metas=metas,
        seed=int(request.seed) & 0xFFFFFFFF,
        source_audio=request.source_audio,  # a cover, or a re-roll of one
        audio_codes=list(plan.audio_codes) or None,
        # A cover's plan is the LM's reading: no lyrics there meant none heard (stored plans re-roll
        # as they were made). A cover with no reading keeps its source's vocals, as upstream's does.
        instrumental=spec.instrumental or (read_cover and not lyrics),
        # Codes are followed for every step, as upstream's default audio_cover_strength (1.0).
        strength=float(spec.strength) if request.source_audio is not None else 1.0,
        base_latents=request.base_latents if edited else None,
        span=edit.span_frames(spec.edit.start_s, spec.edit.end_s, frames) if spec.edit else None,
        base_audio=request.base_audio if edited else None,
        reference_audio=request.reference_audio,
    )


def style_groups(requests: list[TrackRequest], refs: list[StyleRef | None]) -> dict[Any, list[int]]:
    """The indices of the requests to generate, grouped by what the DiT must be (unstyled first)."""
    groups: dict[Any, list[int]] = {}
    ready = [i for i, r in enumerate(requests) if r.error is None]
    for i in sorted(ready, key=lambda i: group_key(refs[i]) is not None):
        groups.setdefault(group_key(refs[i]), []).append(i)
    return groups


PlanStep = Callable[[Any, list[TrackRequest]], list[TrackRequest]]


def _each_alone(step: PlanStep, planner: Any, requests: list[TrackRequest]) -> list[TrackRequest]:
    """A planning step (plans, new codes) for the batch; a song it cannot make fails alone."""
    try:
        return step(planner, requests)
    except GenerationError:
        # One song stopped the batch's decode: run each alone, so that only its own job fails.
        return [request if request.error else _alone(step, planner, request) for request in requests]


def _alone(step: PlanStep, planner: Any, request: TrackRequest) -> TrackRequest:
    try:
        return step(planner, [request])[0]
    except GenerationError as error:
        return replace(request, error=error.user_message)


class AceStepGenerator:
    """engine.protocol.Generator for ACE-Step 1.5 turbo."""

    name = "acestep"
    plans_ahead = True

    def __init__(
        self,
        model_dir: Path,
        device: str = "auto",
        max_batch: int = 4,
        lm_model: str | None = None,
        lm_backend: str = "torch",
        lm_thinking: bool = True,
        max_duration_s: int = 600,
        exact_batches: bool = True,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.device, self.dtype = pick_device(device)
        self.max_batch = max_batch
        self.pipeline = AceStepPipeline.from_dir(self.model_dir, self.device, self.dtype, exact=exact_batches)
        from engine.acestep.lm.integration import load_planner

        # The 5 Hz LM planner (engine/acestep/lm) when MODEL_DIR holds an acestep-5Hz-lm-* folder.
        self.planner = load_planner(
            self.model_dir,
            str(self.device),
            name=lm_model,
            backend=lm_backend,
            thinking=lm_thinking,
            duration_max=max_duration_s,
        )
        # House styles: LoRA adapters under MODEL_DIR/loras/, merged into the DiT for the tracks that ask.
        self.styles = Styles(self.model_dir, self.pipeline.dit.decoder)
        self.scorer: Any = None  # engine.acestep.lm.score.Scorer over the planner's LM, made on the first score

    @classmethod
    def from_parts(cls, pipeline: AceStepPipeline, planner: Any = None, max_batch: int = 4) -> AceStepGenerator:
        """A generator over models already in memory (benchmarks build random full-size ones)."""
        generator = cls.__new__(cls)
        generator.model_dir = Path("<in memory>")
        generator.device, generator.dtype = pipeline.device, pipeline.dtype
        generator.max_batch = max_batch
        generator.pipeline, generator.planner = pipeline, planner
        generator.styles = Styles(generator.model_dir, pipeline.dit.decoder)
        generator.scorer = None
        return generator

    def generate(self, batch: list[TrackRequest], progress: Progress) -> list[GeneratedTrack]:
        """Generate one track per request, in order, ``max_batch`` at a time."""
        results: list[GeneratedTrack] = []
        for start in range(0, len(batch), self.max_batch):
            results.extend(self._generate_chunk(batch[start : start + self.max_batch], progress))
        return results

    def plan(self, batch: list[TrackRequest], progress: Progress) -> list[TrackRequest]:
        """The LM stage alone: fresh songs get a plan, fresh covers a reading of their source.

        The worker runs it on the next batch while this one generates; ``generate`` then finds
        the plans in place (a request without one is still planned there).
        """
        planned: list[TrackRequest] = []
        for start in range(0, len(batch), self.max_batch):
            planned.extend(self._plan_chunk(batch[start : start + self.max_batch], progress))
        return planned

    def describe(self, request: TrackRequest, progress: Progress) -> Description:
        """The LM's reading of a recording (VAE encode, FSQ codes, understand mode): no DiT, no decode."""
        from engine.acestep.describe import describe

        return describe(self.pipeline, self.planner, request, progress)

    def _plan_chunk(self, requests: list[TrackRequest], progress: Progress) -> list[TrackRequest]:
        if self.planner is None:
            return requests
        from engine.acestep.lm.integration import needs_new_codes, needs_plan, with_new_codes, with_plans

        for r in requests:
            if needs_plan(r) or needs_new_codes(r):
                progress(r.job_id, "planning", 0.0)
        requests = _each_alone(with_plans, self.planner, requests)  # songs without a plan get one
        requests = _each_alone(with_new_codes, self.planner, requests)  # a new take: its blueprint, new codes
        return self._understand(requests, progress)

    def _generate_chunk(self, requests: list[TrackRequest], progress: Progress) -> list[GeneratedTrack]:
        requests = self._plan_chunk(requests, progress)
        requests, refs = self._resolve_styles(requests)
        made: dict[int, GeneratedTrack] = {}
        try:
            # One DiT state per call: the tracks of one style and scale (or none) run together, the
            # groups in turn, so no call mixes two styles or a styled and an unstyled track.
            for key, indices in style_groups(requests, refs).items():
                self.styles.use(refs[indices[0]] if key is not None else None)
                made.update(self._generate_group(requests, refs, indices, progress))
        finally:
            self.styles.restore()
        return [self._failed(r, r.error) if r.error else made[i] for i, r in enumerate(requests)]

    def _generate_group(
        self, requests: list[TrackRequest], refs: list[StyleRef | None], indices: list[int], progress: Progress
    ) -> dict[int, GeneratedTrack]:
        """The tracks ``indices`` of the chunk, through the DiT as it is now; by index."""
        ready = [requests[i] for i in indices]
        tracks = [request_to_track(r) for r in ready]

        def report(stage: str, percent: float) -> None:
            for r in ready:
                progress(r.job_id, stage, percent)

        latents: list[np.ndarray] = []
        timings: list[LyricTiming | None] = []
        songs = self.pipeline.generate(tracks, report, keep=latents, timings=timings)  # a failure is its job's
        made = zip(indices, ready, tracks, songs, latents, timings, strict=True)
        return {i: replace(self._timed(r, t, s, lat, tim), style=refs[i]) for i, r, t, s, lat, tim in made}

    def _timed(
        self, request: TrackRequest, track: Track, song: Song, latents: np.ndarray, timing: LyricTiming | None
    ) -> GeneratedTrack:
        """The track's result with its lyric timing (None for an instrumental or a failed timing pass)."""
        result = self._result(request, track, song, latents)
        return result if result.error else replace(result, timing=timing)

    def time_lyrics(self, request: TrackRequest, progress: Progress) -> LyricTiming | None:
        """When each sung line of an existing song starts, from its stored latents (``request.base_latents``).

        The request carries the song's spec and plan (its lyrics, caption, codes): the condition it was
        made with is encoded again, and the timing pass runs on its latents. None for an instrumental,
        for a song without stored latents, or when the timing pass fails (logged).
        """
        if request.base_latents is None:
            return None
        progress(request.job_id, "timing", 0.0)
        # An edit is timed as a song of its own; a cover whose source did not come, on its lyrics alone.
        plain = request.spec.model_copy(update={"edit": None}) if request.spec.edit is not None else request.spec
        kind = "song" if request.kind == "cover" and request.source_audio is None else request.kind
        track = request_to_track(replace(request, spec=plain, kind=kind))
        latents = request.base_latents
        timing = self._as_made(request, lambda: self.pipeline.time_lyrics(track, latents))
        progress(request.job_id, "timing", 100.0)
        return timing

    def _as_made(self, request: TrackRequest, attend: Callable[[], T]) -> T | None:
        """`attend()` with the DiT as it made the request's song (its style applied), then the weights restored.

        None, logged, when the style changed or is gone: the attention would not be the song's.
        """
        [styled], [style] = self._resolve_styles([request])
        if styled.error is not None:
            log.warning("not reading song %s's attention: %s", request.job_id, styled.error)
            return None
        try:
            self.styles.use(style)
            return attend()
        finally:
            self.styles.restore()

    def _resolve_styles(self, requests: list[TrackRequest]) -> tuple[list[TrackRequest], list[StyleRef | None]]:
        """Each request's style as it will be applied; a style that cannot be fails its job alone."""
        resolved: list[TrackRequest] = []
        refs: list[StyleRef | None] = []
        for request in requests:
            spec, ref = request.spec, None
            if request.error is None and spec.style is not None:
                try:
                    ref = self.styles.resolve(spec.style, spec.style_scale, spec.style_sha256)
                except StyleError as error:
                    request = replace(request, error=error.user_message)
            resolved.append(request)
            refs.append(ref)
        return resolved, refs

    def _understand(self, requests: list[TrackRequest], progress: Progress) -> list[TrackRequest]:
        """Covers: the LM reads the source (its 5 Hz codes) for lyrics and metadata."""
        from engine.acestep.lm.integration import needs_understanding, with_understanding

        todo = [r for r in requests if needs_understanding(r)]
        for r in todo:
            progress(r.job_id, "listening", 0.0)
        if not todo or self.planner is None:
            return requests
        return with_understanding(self.planner, self._source_codes, requests)

    def _source_codes(self, request: TrackRequest) -> list[int]:
        if request.source_audio is None:
            raise GenerationError("A cover needs the source audio, and none arrived with the request.")
        return self.pipeline.source_codes(request.source_audio, request.seed)

    def _result(self, request: TrackRequest, track: Track, song: Song, latents: np.ndarray) -> GeneratedTrack:
        if isinstance(song, GenerationError):
            return self._failed(request, song.user_message)
        audio = song
        metadata = TrackMeta(
            bpm=track.metas.bpm,
            key=track.metas.key,
            time_signature=int(track.metas.time_signature) if track.metas.time_signature is not None else None,
            language=track.language,
            duration_s=audio.shape[0] / self.pipeline.vae.sample_rate,
        )
        return GeneratedTrack(
            job_id=request.job_id,
            audio=audio,
            seed=track.seed,
            title=title_from_caption(track.caption, request.kind),
            caption=track.caption,
            lyrics=track.lyrics,
            metadata=metadata,
            plan=request.plan,
            model=self.model_info(),
            sample_rate=self.pipeline.vae.sample_rate,
            latents=latents,
            notice=self._cut_notice(request, audio.shape[0]),
        )

    def _failed(self, request: TrackRequest, message: str) -> GeneratedTrack:
        """The result of a track that failed alone: no audio, and the sentence its job fails with."""
        empty = np.zeros((0, 2), dtype=np.float32)
        spec = request.spec
        title = title_from_caption(spec.caption, request.kind)
        return GeneratedTrack(request.job_id, empty, request.seed, title, spec.caption, spec.lyrics, error=message)

    def _cut_notice(self, request: TrackRequest, samples: int) -> str | None:
        """A cover of a recording longer than the longest song covers its start, and says so."""
        if request.source_audio is None:
            return None
        rate = self.pipeline.vae.sample_rate
        source_s, cover_s = request.source_audio.shape[0] / rate, samples / rate
        if source_s - cover_s < 1.0:
            return None
        return f"The recording is {span(round(source_s))} long; this cover is of its first {span(round(cover_s))}."

    def score(self, request: TrackRequest, track: GeneratedTrack, progress: Progress) -> TakeScore:
        """A take of a `best=N` request scored the official way by the 5 Hz LM (`engine/acestep/lm/score.py`).

        Without an LM every take scores 0 (the first take is then posted). The total is the LM's
        score alone, combined as upstream's `calculate_reward_score` does.
        """
        progress(request.job_id, "scoring", 0.0)
        if self.planner is None:
            return TakeScore(total=0.0, best_of=request.spec.best_of)
        from engine.acestep.lm.score import Scorer, score_take

        self.scorer = self.scorer or Scorer(self.planner.lm)
        taken = score_take(self.scorer, request, track, self.pipeline.source_codes)
        taken = taken.model_copy(update={"lyric_alignment": self._lyric_alignment(request, track)})
        progress(request.job_id, "scoring", 100.0)
        return taken

    def _lyric_alignment(self, request: TrackRequest, take: GeneratedTrack) -> float | None:
        """Upstream's ``get_lyric_score`` of a take (its ``dit_score``): how the DiT's attention aligns its lyrics.

        None for an instrumental, a take without latents, or a failed pass. It is stored beside the LM's
        score and does not enter ``total``, as upstream keeps the two apart.
        """
        if take.latents is None or not take.lyrics.strip():
            return None
        latents = take.latents
        planned = request.with_plan(take.plan) if take.plan is not None else request  # as it was made
        try:
            scores = self._as_made(request, lambda: self.pipeline.lyric_scores(request_to_track(planned), latents))
        except Exception:
            log.exception("the lyric score of take %s failed", request.job_id)
            return None
        return scores[1] if scores is not None else None

    def model_info(self) -> ModelInfo:
        """What a re-roll needs besides the request and seed to give the same audio."""
        return ModelInfo(
            backend=self.name,
            dit=DIT_DIR,
            dit_version=self.pipeline.dit.config.model_version,
            vae=VAE_DIR,
            text_encoder=TEXT_ENCODER_DIR,
            steps=len(self.pipeline.timesteps),
            shift=nearest_shift(self.pipeline.shift),
            sampler="ode",
            dtype=str(self.dtype).removeprefix("torch."),
            device=self.device.type,
        )
