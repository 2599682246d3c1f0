"""A claimed job's typed spec becomes the backend's request field by field."""

from datetime import datetime

import numpy as np

from engine.protocol import TrackRequest, request_for
from storage.contract.spec import JobSpec, Plan
from storage.contract.types import JobView


def job(spec: JobSpec, kind: str = "song") -> JobView:
    return JobView(
        id=4,
        user_id=1,
        kind=kind,
        status="running",
        stage="starting",
        progress=0.0,
        seed=77,
        spec=spec,
        parent_id=None,
        source_blob=None,
        attempts=1,
        error=None,
        cost=1.0,
        vstart=0.0,
        created_at=datetime(2026, 11, 28),
        started_at=None,
        finished_at=None,
    )


def test_every_field_comes_from_the_spec():
    spec = JobSpec(
        caption="rain",
        lyrics="la",
        instrumental=True,
        duration_s=60.0,
        duration_given=False,
        duration_max_s=240.0,
        bpm=80,
        key="F# minor",
        language="ja",
        time_signature=3,
        strength=0.8,
    )
    source = np.zeros((10, 2), np.float32)
    request = request_for(job(spec, "cover"), source)
    # The spec itself crosses, not a copy of its fields.
    assert request == TrackRequest(job_id=4, kind="cover", spec=spec, seed=77, source_audio=source)
    assert request.spec is spec and request.plan is None and request.spec.edit is None


def test_a_clip_to_sound_like_is_the_reference_not_the_source():
    clip = np.zeros((10, 2), np.float32)
    request = request_for(job(JobSpec(caption="rain", duration_s=30.0, like=True)), clip)
    assert request.source_audio is None and request.reference_audio is clip


def test_an_old_stored_plan_reaches_the_backend_under_the_lm_names():
    old = {
        "caption": "rain",
        "description": "rain",
        "duration_s": 60,
        "duration_given": False,
        "plan": {"key": "E minor", "time_signature": 3, "duration_s": 45.0, "audio_codes": [1, 2]},
    }
    request = request_for(job(JobSpec.from_stored(old), "reroll"))
    assert request.plan == Plan(key="E minor", time_signature=3, duration_s=45.0, audio_codes=(1, 2))
    assert request.spec.caption == "rain" and request.spec.duration_given is False and request.source_audio is None


def test_a_planned_request_keeps_the_rest_of_its_spec():
    spec = JobSpec(caption="rain", duration_s=60.0, duration_given=False, duration_max_s=240.0, bpm=80)
    request = request_for(job(spec))
    planned = request.with_plan(Plan(caption="rain at night", duration_s=47.0, audio_codes=(1,)))
    assert planned.plan == Plan(caption="rain at night", duration_s=47.0, audio_codes=(1,))
    assert planned.spec.model_copy(update={"plan": None}) == spec and request.plan is None
