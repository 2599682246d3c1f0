"""Glue between the planner and the ACE-Step backend: plan the song requests that need one.

A ``song`` request without a plan is planned (caption, lyrics, metadata and audio codes); a
request that already carries a plan (a re-roll) keeps it exactly, so the same seed repeats the
same song and another seed keeps its blueprint. A cover is not planned: the LM reads its source
instead (understand mode) for lyrics and metadata, and that reading is stored the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from engine.acestep.lm.model import find_lm
from engine.acestep.lm.planner import Planner, PlannerSettings, PlanRequest, understand
from engine.acestep.lm.values import BPM_RANGE, DURATION_MIN, KEYSCALES, LANGUAGES, TIME_SIGNATURES
from engine.protocol import TrackRequest
from storage.contract.errors import GenerationError, UserError
from storage.contract.spec import JobSpec, Plan

log = logging.getLogger(__name__)


def load_planner(
    model_dir: Path,
    device: str,
    name: str | None = None,
    backend: str = "torch",
    thinking: bool = True,
    duration_max: int = 600,
) -> Planner | None:
    """Load the LM planner when ``model_dir`` holds an ``acestep-5Hz-lm-*`` folder, else None.

    Args:
        model_dir: The checkpoint folder (MODEL_DIR).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        name: Preferred LM folder (settings.lm_model); any present LM is used otherwise.
        backend: ``torch`` or ``vllm`` (settings.lm_backend).
        thinking: Write audio codes after the metadata (settings.lm_thinking).
        duration_max: The longest song the LM may ever plan (settings.max_duration_s); each song's
            own bound is its spec's `duration_max_s` (`plan_request`).
    """
    folder = find_lm(model_dir, name) or find_lm(model_dir)
    if folder is None:
        return None
    settings = PlannerSettings(backend=backend, thinking=thinking, duration_max=duration_max)
    planner = Planner.load(model_dir, folder.name, device, settings)
    log.info("5 Hz LM planner loaded from %s on %s", folder.name, device)
    return planner


def plan_request(request: TrackRequest) -> PlanRequest:
    """The planner's view of a song request; values outside the model's sets are left to the LM.

    The longest length the LM may choose is the spec's `duration_max_s`, the length the bot priced
    the song at (one bound for the price and the plan), within the planner's own.
    """
    spec = request.spec
    bpm = spec.bpm if spec.bpm is not None and BPM_RANGE[0] <= spec.bpm <= BPM_RANGE[1] else None
    signature = spec.time_signature if spec.time_signature in TIME_SIGNATURES else None
    return PlanRequest(
        description=spec.caption,
        seed=int(request.seed) & 0xFFFFFFFF,
        instrumental=spec.instrumental,
        language=spec.language if spec.language in LANGUAGES else None,
        duration=spec.duration_s if spec.duration_given else None,  # the LM picks the length
        bpm=bpm,
        keyscale=spec.key if spec.key in KEYSCALES else None,
        timesignature=signature,
        lyrics=spec.lyrics.strip() or None,
        duration_max=int(spec.duration_max_s) if spec.duration_max_s is not None else None,
    )


def needs_plan(request: TrackRequest) -> bool:
    """Only fresh songs are planned; re-rolls reuse their stored plan, covers follow their source.

    The LM writes durations of 10 s and more (upstream's range, and the bots' minimum), so a
    shorter request (only internal callers make them) stays on the DiT-only path.
    """
    fresh = request.plan is None and request.error is None
    return request.kind == "song" and fresh and round(request.spec.duration_s) >= DURATION_MIN


def with_plans(planner: Planner, requests: list[TrackRequest]) -> list[TrackRequest]:
    """Return the requests with a plan attached to every one that needs it (one batched decode).

    Raises:
        GenerationError: with the planner's sentence when a request cannot be planned.
    """
    todo = [i for i, r in enumerate(requests) if needs_plan(r)]
    if not todo:
        return requests
    try:
        plans = planner.plan([plan_request(requests[i]) for i in todo])
    except UserError as error:
        raise GenerationError(error.user_message) from error
    out = list(requests)
    for i, plan in zip(todo, plans, strict=True):
        out[i] = requests[i].with_plan(plan)
    return out


def needs_new_codes(request: TrackRequest) -> bool:
    """A re-roll as a new take: its stored plan keeps caption, lyrics and metadata, and gets new codes."""
    return request.spec.new_take and request.plan is not None and not request.plan.audio_codes


def with_new_codes(planner: Planner, requests: list[TrackRequest]) -> list[TrackRequest]:
    """Return the requests with new audio codes, drawn with each one's seed, in every new take's plan."""
    todo = [i for i, r in enumerate(requests) if needs_new_codes(r)]
    if not todo:
        return requests
    plans = [requests[i].plan or Plan() for i in todo]
    codes = planner.new_codes(plans, [int(requests[i].seed) & 0xFFFFFFFF for i in todo])
    out = list(requests)
    for i, plan, code_list in zip(todo, plans, codes, strict=True):
        out[i] = requests[i].with_plan(plan.model_copy(update={"audio_codes": tuple(code_list)}))
    return out


def needs_understanding(request: TrackRequest) -> bool:
    """A fresh cover: the LM reads its source once; a re-roll of a cover reuses that reading."""
    fresh = request.plan is None and request.error is None
    return request.kind == "cover" and fresh and request.source_audio is not None


def with_understanding(
    planner: Planner, codes_of: Callable[[TrackRequest], list[int]], requests: list[TrackRequest]
) -> list[TrackRequest]:
    """Attach the LM's reading of each fresh cover's source (lyrics and metadata) as its plan.

    The user's style stays the caption (the LM's own caption fills in when none was given); the
    source's own length wins over the LM's guess; the source audio, not codes, guides the DiT. A
    source the LM cannot read (too long for its context) is covered from the style alone.
    """
    todo = [i for i, r in enumerate(requests) if needs_understanding(r)]
    if not todo:
        return requests
    try:
        codes, seeds = [codes_of(requests[i]) for i in todo], [requests[i].seed for i in todo]
        readings = understand(planner, codes, seeds)
    except (UserError, GenerationError) as error:
        log.warning("the LM could not read a cover's source; covering from the style alone (%s)", error)
        return requests
    out = list(requests)
    for i, reading in zip(todo, readings, strict=True):
        out[i] = requests[i].with_plan(cover_plan(requests[i], reading))
    return out


def cover_plan(request: TrackRequest, reading: Plan) -> Plan:
    """A stored plan for a cover: the LM's reading, with the user's style and the source's length.

    New lyrics and a language from the user win over the reading's, as given (upstream's cover
    passes its `lyrics` and `vocal_language` to the DiT untouched; its LM never sees a cover).
    """
    spec = request.spec
    lyrics = (reading.lyrics or "").strip()
    if spec.instrumental or lyrics.lower() in ("", "[instrumental]"):
        lyrics = ""
    caption = spec.caption.strip() or reading.caption or ""
    update = {"caption": caption, "lyrics": lyrics, "duration_s": spec.duration_s, "audio_codes": ()}
    update.update(user_words(spec))
    return reading.model_copy(update=update)


def user_words(spec: JobSpec) -> dict[str, str | None]:
    """The user's new lyrics and vocal language for a cover's plan; nothing when none were given.

    New words without a language are sung in "unknown" (upstream's default `vocal_language`):
    the language the LM heard in the source may not be the new words' own.
    """
    words: dict[str, str | None] = {}
    if spec.lyrics and not spec.instrumental:
        words["lyrics"] = spec.lyrics
        words["language"] = "unknown"
    if spec.language is not None:
        words["language"] = spec.language
    return words
