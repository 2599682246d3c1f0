"""The job spec on its own: what it accepts, what it refuses, and how it reads old stored specs."""

import pytest
from pydantic import ValidationError

from storage.contract.errors import UserError
from storage.contract.spec import JobSpec, Plan
from storage.contract.values import DEFAULT_COVER_STRENGTH, KEYS, canonical_key

SONG = {
    "caption": "lo-fi rain",
    "lyrics": "la",
    "duration_s": 60.0,
    "duration_given": False,
    "duration_max_s": 240.0,
    "bpm": 80,
    "key": "F# minor",
    "language": "en",
    "time_signature": 3,
}


def test_stored_form_reads_back_equal():
    spec = JobSpec(
        **SONG, plan=Plan(caption="c", key="E minor", time_signature=4, duration_s=47.2, audio_codes=(1, 2, 3))
    )
    data = spec.stored()
    assert data["plan"]["key"] == "E minor" and data["plan"]["audio_codes"] == [1, 2, 3]
    assert JobSpec.from_stored(data) == spec
    assert JobSpec.model_validate(data) == spec


def test_an_unknown_field_is_refused():
    with pytest.raises(ValidationError, match="colour"):
        JobSpec(duration_s=10, colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="colour"):
        JobSpec.from_stored({"duration_s": 10, "colour": "red"})
    with pytest.raises(UserError) as refused:
        JobSpec.build(duration_s=10, colour="red")
    assert refused.value.user_message == "I can't queue that: colour: extra inputs are not permitted."


def test_the_spec_is_frozen():
    spec = JobSpec(duration_s=10)
    with pytest.raises(ValidationError):
        spec.duration_s = 20  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value", "sentence"),
    [
        ("bpm", 301, "I can't queue that: bpm: input should be less than or equal to 300."),
        (
            "key",
            "H minor",
            "I can't queue that: key: the key must be written like 'F# minor' or 'Bb major', not 'H minor'.",
        ),
        ("language", "xx", "I can't queue that: language: the language must be a code such as en or ja, not 'xx'."),
        (
            "time_signature",
            5,
            "I can't queue that: time_signature: the time signature must be 2, 3, 4 or 6 beats per bar.",
        ),
        ("duration_s", 601, "I can't queue that: duration_s: input should be less than or equal to 600."),
        ("strength", 1.5, "I can't queue that: strength: input should be less than or equal to 1."),
    ],
)
def test_values_outside_the_sets_are_one_sentence(field, value, sentence):
    with pytest.raises(UserError) as refused:
        JobSpec.build(**{**SONG, field: value})
    assert refused.value.user_message == sentence


def test_the_planner_bound_covers_the_default_length():
    with pytest.raises(UserError, match="shorter than the song's length"):
        JobSpec.build(duration_s=60, duration_given=False, duration_max_s=30)


def test_defaults_come_from_the_values_module():
    spec = JobSpec(duration_s=12.0)
    assert spec.strength == DEFAULT_COVER_STRENGTH and spec.duration_given and spec.plan is None
    assert "C# minor" in KEYS and "Bb major" in KEYS and len(KEYS) == 42


def test_old_song_cover_and_reroll_specs_read_back():
    # Exactly what bot/core/service.py stored before the spec was typed.
    song = {
        "caption": "rain",
        "description": "rain",
        "lyrics": "",
        "instrumental": False,
        "duration_s": 60,
        "duration_given": False,
        "bpm": None,
        "key": "C# minor",
        "language": None,
        "time_signature": None,
    }
    cover = {
        "caption": "jazz",
        "style": "jazz",
        "strength": 0.7,
        "duration_s": 12.34,
        "lyrics": "",
        "instrumental": False,
    }
    reroll = {
        **song,
        "plan": {
            "caption": "c",
            "lyrics": "l",
            "bpm": 90,
            "keyscale": "E minor",
            "timesignature": 3,
            "duration": 47.0,
            "language": "en",
            "audio_codes": [4, 5],
        },
    }
    old_song = JobSpec.from_stored(song)
    assert (old_song.caption, old_song.key, old_song.duration_given, old_song.duration_max_s) == (
        "rain",
        "C# minor",
        False,
        None,
    )
    old_cover = JobSpec.from_stored(cover)
    assert (old_cover.caption, old_cover.strength, old_cover.duration_s) == ("jazz", 0.7, 12.34)
    assert JobSpec.from_stored(reroll).plan == Plan(
        caption="c",
        lyrics="l",
        bpm=90,
        key="E minor",
        time_signature=3,
        duration_s=47.0,
        language="en",
        audio_codes=(4, 5),
    )
    # Discord once stored the key and the language as typed: read in the one spelling, or left to the model.
    typed = JobSpec.from_stored({**song, "key": "c#m", "language": "EN"})
    assert (typed.key, typed.language) == ("C# minor", "en")
    assert JobSpec.from_stored({**song, "key": "H dur", "language": "klingon"}).key is None
    # A spec that only ever held the description still has its caption.
    assert JobSpec.from_stored({"description": "drone", "duration_s": 30}).caption == "drone"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("c#m", "C# minor"),
        ("Bb major", "Bb major"),
        ("F♯ min", "F# minor"),
        ("G", "G major"),
        ("e♭", "Eb major"),
        ("H", None),
        ("C#M", None),
    ],
)
def test_canonical_key(text, key):
    assert canonical_key(text) == key
    assert key is None or key in KEYS


def test_a_plan_reads_the_lm_spellings_under_the_contracts_names():
    plan = Plan.model_validate({"keyscale": "A minor", "timesignature": 6, "duration": 33.0, "genres": "jazz"})
    assert (plan.key, plan.time_signature, plan.duration_s) == ("A minor", 6, 33.0)
    assert Plan.model_validate({"key": "A minor", "time_signature": 6, "duration_s": 33.0}) == plan
    assert set(plan.stored()) == {
        "caption",
        "lyrics",
        "bpm",
        "key",
        "time_signature",
        "duration_s",
        "language",
        "audio_codes",
    }


def test_a_lora_style_reads_back_and_an_untyped_cover_style_stays_its_caption():
    """`style` was the cover's caption in untyped specs; since migration 0007 it names a LoRA style."""
    spec = JobSpec(**SONG, style="demo", style_scale=0.5, style_sha256="ab" * 32)
    assert JobSpec.from_stored(spec.stored()) == spec
    typed_before_0007 = {k: v for k, v in JobSpec(**SONG).stored().items() if not k.startswith("style")}
    assert JobSpec.from_stored({**typed_before_0007, "style": "jazz"}).style is None
    old_cover = JobSpec.from_stored({"style": "bossa nova", "duration_s": 12})
    assert (old_cover.caption, old_cover.style) == ("bossa nova", None)
