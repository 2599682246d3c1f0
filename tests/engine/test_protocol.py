"""A claimed job's typed spec becomes the backend's request field by field."""

from datetime import datetime

import numpy as np

from engine.protocol import TrackRequest, request_for
from storage.spec import JobSpec
from storage.types import JobView


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
    assert request == TrackRequest(
        job_id=4,
        kind="cover",
        caption="rain",
        lyrics="la",
        instrumental=True,
        duration_s=60.0,
        seed=77,
        language="ja",
        bpm=80,
        key="F# minor",
        time_signature=3,
        source_audio=source,
        strength=0.8,
        plan=None,
        duration_given=False,
    )


def test_an_old_stored_plan_reaches_the_backend_under_the_lm_names():
    old = {
        "caption": "rain",
        "description": "rain",
        "duration_s": 60,
        "duration_given": False,
        "plan": {"key": "E minor", "time_signature": 3, "duration_s": 45.0, "audio_codes": [1, 2]},
    }
    request = request_for(job(JobSpec.from_stored(old), "reroll"))
    assert request.plan == {
        "caption": None,
        "lyrics": None,
        "bpm": None,
        "keyscale": "E minor",
        "timesignature": 3,
        "duration": 45.0,
        "language": None,
        "audio_codes": [1, 2],
    }
    assert request.caption == "rain" and request.duration_given is False and request.source_audio is None
