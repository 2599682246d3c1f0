from dataclasses import replace

import numpy as np
import pytest

from engine.acestep.lm.integration import plan_request, with_plans
from engine.protocol import TrackRequest
from storage.contract.spec import JobSpec, Plan
from tests.helpers import track_request


@pytest.fixture(scope="module")
def generator(tiny_full_set):
    from engine.acestep.backend import AceStepGenerator

    return AceStepGenerator(tiny_full_set, device="cpu", max_batch=4)


def _song(job_id: int, seed: int, **kw) -> TrackRequest:
    base = {"kind": "song", "caption": "a sad folk song about trains", "duration_s": 10.0, "seed": seed}
    return track_request(job_id, **{**base, **kw})


def test_song_is_planned_and_reroll_with_the_plan_is_identical(generator):
    assert generator.planner is not None
    first = generator.generate([_song(1, 5)], lambda *a: None)[0]
    plan = first.plan
    assert plan is not None and len(plan.audio_codes) == 50 and plan.duration_s == 10
    assert first.caption == plan.caption and first.lyrics == plan.lyrics
    reroll = _song(2, 5, kind="reroll", plan=plan)
    again = generator.generate([reroll], lambda *a: None)[0]
    assert again.plan == plan
    assert np.array_equal(again.audio, first.audio)
    other = generator.generate([replace(reroll, seed=6)], lambda *a: None)[0]
    assert other.plan == plan and not np.array_equal(other.audio, first.audio)


def test_with_plans_batches_only_fresh_songs(generator):
    stored = Plan(
        caption="x",
        lyrics="[Instrumental]",
        bpm=90,
        key="C major",
        time_signature=4,
        duration_s=10,
        language="en",
        audio_codes=(1,) * 50,
    )
    requests = [
        _song(1, 1, instrumental=True),
        _song(2, 2, kind="reroll", plan=stored),
        _song(3, 3, kind="cover"),
        _song(4, 4, duration_s=6.0),
    ]
    out = with_plans(generator.planner, requests)
    assert out[0].plan is not None and out[0].plan.lyrics == "[Instrumental]"
    assert out[1].plan is stored and out[2].plan is None and out[3].plan is None


def test_request_values_outside_the_model_sets_are_left_to_the_lm():
    # The contract refuses these values; a spec built past it (model_construct) still meets a planner that copes.
    fields = {"key": "H major", "bpm": 999, "language": "xx", "time_signature": 5, "lyrics": "  [Verse]\nla  "}
    spec = JobSpec.model_construct(**{**JobSpec(caption="rain", duration_s=10.0).model_dump(), **fields})
    req = plan_request(TrackRequest(job_id=1, kind="song", spec=spec, seed=2**32 + 7))
    assert (req.keyscale, req.bpm, req.language, req.timesignature) == (None, None, None, None)
    assert req.seed == 7 and req.lyrics == "[Verse]\nla"


def test_planning_stage_is_reported_and_thinking_off_writes_no_codes(tiny_full_set):
    from engine.acestep.backend import AceStepGenerator

    generator = AceStepGenerator(tiny_full_set, device="cpu", max_batch=4, lm_thinking=False)
    stages = []
    [track] = generator.generate([_song(1, 5)], lambda job, stage, pct: stages.append((job, stage)))
    assert stages[0] == (1, "planning")
    assert track.plan is not None and track.plan.audio_codes == ()
    assert track.caption == track.plan.caption and track.audio.shape[0] == 10 * 48_000


def test_lm_model_setting_picks_the_folder(tiny_full_set):
    from engine.acestep.lm.integration import load_planner

    assert load_planner(tiny_full_set, "cpu", name="acestep-5Hz-lm-0.6B").lm.folder.name == "acestep-5Hz-lm-0.6B"
    # A name that is not there falls back to any LM present, rather than refusing to plan.
    assert load_planner(tiny_full_set, "cpu", name="acestep-5Hz-lm-4B") is not None


def test_the_planner_picks_the_length_when_the_user_gave_none(tiny_full_set):
    from engine.acestep.backend import AceStepGenerator

    generator = AceStepGenerator(tiny_full_set, device="cpu", max_batch=4, max_duration_s=12)
    [track] = generator.generate([_song(1, 9, duration_s=60.0, duration_given=False)], lambda *a: None)
    assert track.plan is not None and track.plan.duration_s is not None and 10 <= track.plan.duration_s <= 12
    assert track.audio.shape[0] == track.plan.duration_s * 48_000
    assert len(track.plan.audio_codes) == 5 * track.plan.duration_s


def test_the_planner_chooses_no_longer_than_the_song_was_priced(generator):
    # The bot prices a song the planner times at its spec's duration_max_s: the planner keeps under it.
    priced = _song(1, 9, duration_s=10.0, duration_given=False, duration_max_s=11.0)
    request = plan_request(priced)
    assert request.duration_max == 11 and generator.planner.max_duration(request) == 11
    unbounded = plan_request(_song(2, 9, duration_s=10.0, duration_given=False))
    assert unbounded.duration_max is None and generator.planner.max_duration(unbounded) > 11
    [track] = generator.generate([priced], lambda *a: None)
    assert track.plan is not None and track.plan.duration_s is not None and 10 <= track.plan.duration_s <= 11


def _source(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 48_000)) / 48_000
    tone = 0.4 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    return np.stack([tone, tone], axis=1).astype(np.float32)


def test_a_cover_is_read_by_the_lm_and_its_reroll_is_exact(generator):
    source = _source(11.0)
    cover = _song(1, 3, kind="cover", caption="", source_audio=source, strength=0.6, duration_s=11.0)
    stages = []
    [first] = generator.generate([cover], lambda job, stage, pct: stages.append(stage))
    assert stages[0] == "listening"
    plan = first.plan
    assert plan is not None and plan.audio_codes == () and plan.duration_s == 11.0
    assert plan.caption and first.caption == plan.caption  # no style given: the LM's reading captions it
    assert first.audio.shape[0] == 11 * 48_000
    again = generator.generate([replace(cover, kind="reroll").with_plan(plan)], lambda *a: None)[0]
    assert np.array_equal(again.audio, first.audio)
    styled_spec = cover.spec.model_copy(update={"caption": "jazz trio"})
    styled = generator.generate([replace(cover, spec=styled_spec)], lambda *a: None)[0]
    assert styled.caption == "jazz trio" and styled.plan is not None and styled.plan.caption == "jazz trio"


def test_a_source_the_lm_cannot_read_is_covered_from_the_style(generator, monkeypatch):
    import engine.acestep.lm.integration as integration
    from storage.contract.errors import UserError

    def too_long(*args, **kwargs):
        raise UserError("This audio is too long for the song planner to describe; please use a shorter clip.")

    monkeypatch.setattr(integration, "understand", too_long)
    cover = _song(1, 3, kind="cover", caption="bossa nova", source_audio=_source(10.0), strength=0.6)
    [track] = generator.generate([cover], lambda *a: None)
    assert track.plan is None and track.caption == "bossa nova"
