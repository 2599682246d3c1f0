"""The typed results: one spelling per quantity, read from rows of every age, titled in one place."""

import pytest
from pydantic import ValidationError

from storage.contract.results import ModelInfo, TrackMeta, title_from_caption
from storage.contract.spec import JobSpec, Plan


def test_metadata_is_written_under_the_specs_names_and_read_back_the_same():
    meta = TrackMeta(bpm=90, key="E minor", time_signature=3, duration_s=47.5, language="en")
    stored = meta.stored()
    assert stored == {"bpm": 90, "key": "E minor", "time_signature": 3, "duration_s": 47.5, "language": "en"}
    assert TrackMeta.from_stored(stored) == meta


def test_metadata_stored_under_the_lm_spellings_is_read_the_one_way():
    lm = {"bpm": 90, "keyscale": "C# minor", "timesignature": 4, "duration": 30.0, "language": ""}
    meta = TrackMeta.from_stored(lm)
    assert (meta.key, meta.time_signature, meta.duration_s) == ("C# minor", 4, 30.0)
    assert "keyscale" not in meta.stored() and meta.stored()["key"] == "C# minor"


def test_a_plan_is_the_metadata_with_caption_lyrics_and_codes():
    plan = Plan.from_stored({"caption": "c", "keyscale": "A minor", "duration": 12.0, "audio_codes": [1, 2]})
    assert isinstance(plan, TrackMeta) and plan.key == "A minor" and plan.audio_codes == (1, 2)
    assert Plan.from_stored(plan.stored()) == plan


def test_the_model_keeps_only_what_the_backend_set():
    assert ModelInfo(backend="sketch").stored() == {"backend": "sketch"}
    made = ModelInfo.from_stored({"backend": "acestep", "steps": 8, "shift": 3.0, "dtype": "bfloat16"})
    assert (made.backend, made.steps, made.shift, made.dtype) == ("acestep", 8, 3.0, "bfloat16")
    assert ModelInfo.from_stored({}).backend == "unknown"  # a row stored with an empty model


def test_results_are_frozen():
    meta = TrackMeta(bpm=90)
    with pytest.raises(ValidationError):
        meta.bpm = 100  # type: ignore[misc]


def test_titles_are_decided_in_one_place():
    assert title_from_caption("a dreamy, lo-fi beat for studying late at night") == "Dreamy Lo-fi Beat For"
    assert title_from_caption("  ") == "Untitled"
    assert title_from_caption("", "cover") == "Cover"
    assert title_from_caption("jazz", "cover") == "Jazz"


def test_an_edit_keeps_its_songs_metadata_in_the_specs_spelling():
    fields = JobSpec.meta_fields(TrackMeta(bpm=90, key="C♯ major", time_signature=3, language="unknown"))
    assert fields == {"bpm": 90, "key": "C# major", "language": None, "time_signature": 3}
    assert JobSpec.meta_fields(TrackMeta(bpm=999, time_signature=5)) == {
        "bpm": None,
        "key": None,
        "language": None,
        "time_signature": None,
    }
