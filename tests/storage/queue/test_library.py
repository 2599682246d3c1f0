"""Finished tracks read back as typed values, including rows written before the results were typed."""

from datetime import datetime

from sqlalchemy import insert

from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import Edit, Plan
from storage.contract.types import SUCCEEDED, UserRef
from storage.models import Job, Track
from storage.queue.accounts import Accounts
from storage.queue.library import Library

T0 = datetime(2026, 12, 6, 12, 0, 0)


def _old_rows(db, spec: dict, meta: dict, plan: dict | None, model: dict) -> int:
    """A job and its track exactly as the untyped engine and service wrote them."""
    uid = Accounts(db).ensure(UserRef("console", "old", "old"), T0).id
    with db.begin() as conn:
        job_id = conn.execute(
            insert(Job.__table__)
            .values(
                user_id=uid,
                kind="repaint",
                spec=spec,
                seed=3,
                status=SUCCEEDED,
                stage=SUCCEEDED,
                progress=100.0,
                attempts=1,
                max_attempts=3,
                run_after=T0,
                cost=30.0,
                vstart=0.0,
                vfinish=30.0,
                created_at=T0,
            )
            .returning(Job.__table__.c.id)
        ).scalar_one()
        conn.execute(
            insert(Track.__table__).values(
                job_id=job_id,
                batch_index=0,
                blob_path="tracks/old.mp3",
                format="mp3",
                duration_s=30.0,
                seed=3,
                sha256="0" * 64,
                title="Old",
                caption="rain",
                lyrics="",
                meta=meta,
                plan=plan,
                model=model,
                created_at=T0,
            )
        )
    return job_id


def test_a_track_stored_under_the_old_keys_reads_as_typed_values(db):
    # The metadata as the untyped engine wrote it, the plan under the LM's names as the first typed plan did.
    spec = {
        "caption": "rain",
        "description": "rain",
        "duration_s": 30,
        "edit": {"task": "repaint", "song_id": 1, "start_s": 2.0, "end_s": 4.0},
        "like": True,
    }
    meta = {"bpm": 90, "key": "C# minor", "time_signature": 4, "language": "en", "duration_s": 30.0}
    plan = {"caption": "rain", "keyscale": "C# minor", "duration": 30.0, "audio_codes": [7, 8]}  # the LM's names
    model = {"backend": "acestep", "steps": 8, "shift": 3.0, "sampler": "ode"}
    job_id = _old_rows(db, spec, meta, plan, model)
    track = Library(db).get(job_id)
    assert track is not None
    assert track.meta == TrackMeta(bpm=90, key="C# minor", time_signature=4, language="en", duration_s=30.0)
    assert track.plan == Plan(caption="rain", key="C# minor", duration_s=30.0, audio_codes=(7, 8))
    assert track.model == ModelInfo(backend="acestep", steps=8, shift=3.0, sampler="ode")
    assert track.edit == Edit(task="repaint", song_id=1, start_s=2.0, end_s=4.0) and track.like


def test_a_track_with_no_plan_and_an_empty_model_still_reads(db):
    job_id = _old_rows(db, {"caption": "rain", "duration_s": 30}, {}, None, {})
    track = Library(db).get(job_id)
    assert track is not None and track.plan is None and track.edit is None and not track.like
    assert track.meta == TrackMeta() and track.model.backend == "unknown"
