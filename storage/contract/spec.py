"""The job spec: the one contract between the bot, which writes it, and the engine, which reads it.

`bot/core` builds a `JobSpec` and validates it, the queue prices it and stores it as JSON (through
`stored()`), and the engine turns it into its request. A field name the spec does not know is refused.
Rows queued before the spec was typed are read with `JobSpec.from_stored`, which drops the copies of
the caption the old dict kept (`description`, `style`) and spells an old key or language the one way
(left to the model when it is not one).

A `Plan` is the 5 Hz LM's blueprint of a song, stored with its track and handed back on a re-roll so
that the same seed repeats the same song. It is a `TrackMeta` (`results.py`, the other direction of
the contract) with a caption, lyrics and codes, so its metadata carry the same names as the spec's
own fields (`key`, `time_signature`, `duration_s`), one name each.

Bounds live here too, not only in the parsers: the spec's fields, and the count of takes and their
seeds (`check_takes`, `check_seed`), hold whatever adapter the request came through.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from storage.contract.errors import UserError
from storage.contract.results import Record, TrackMeta
from storage.contract.text import clean_lines
from storage.contract.values import (
    BEST_OF_MAX,
    BPM_MAX,
    BPM_MIN,
    DEFAULT_COVER_STRENGTH,
    KEYS,
    LANGUAGES,
    MAX_DURATION_S,
    SEED_MAX,
    TAKES_MAX,
    TIME_SIGNATURES,
    canonical_key,
)

# Keys of the untyped spec that only repeated the caption.
LEGACY_KEYS = ("description", "style")


class Plan(TrackMeta):
    """The LM's plan for a song: caption, lyrics, its metadata (`TrackMeta`'s fields) and its 5 Hz audio codes.

    The engine writes it; a field it adds that a re-roll does not use is dropped on read. The LM's
    spellings `keyscale`, `timesignature` and `duration` (plans stored by the first typed spec) are
    read as `key`, `time_signature` and `duration_s`, and always written back under those.
    """

    caption: str | None = None
    lyrics: str | None = None
    audio_codes: tuple[int, ...] = ()


class Description(Record):
    """What `/describe` heard in a recording: the reading of a `describe` job, stored in `jobs.result`.

    Args:
        plan: The reading as a `Plan` without codes (caption, lyrics, bpm, key, time signature,
            language), its duration the recording's own length.
        backend: Who read it: `acestep` (the 5 Hz LM) or `sketch` (a guess from simple analysis).
        cut_s: The reading heard only this many seconds from the start (a recording longer than the
            LM's context), or None when it heard all of it.
    """

    plan: Plan = Field(default_factory=Plan)
    backend: str = "unknown"
    cut_s: float | None = None


class Edit(BaseModel):
    """A change to a finished song: repaint a span of it, or extend it past its end.

    Both regenerate the seconds from `start_s` to `end_s` of song `song_id` (for an extend, from its
    old end to its new one) and keep the rest of its samples, so a re-roll of an edit repeats the
    same edit of the same song with its own seed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: Literal["repaint", "extend"]
    song_id: int = Field(ge=1)
    start_s: float = Field(ge=0)
    end_s: float = Field(gt=0, le=MAX_DURATION_S)

    @model_validator(mode="after")
    def _ordered(self) -> Edit:
        if self.end_s <= self.start_s:
            raise ValueError("the end of the part to change must come after its start")
        return self


class JobSpec(BaseModel):
    """What to make, validated. The job's kind, seed and source audio are columns of their own.

    Args:
        caption: The description (a song) or the style (a cover).
        lyrics: The lyrics; empty for an instrumental, or a cover that keeps its source's words.
        instrumental: The user asked for no vocals.
        duration_s: Length of the result in seconds. When `duration_given` is False the planner may
            choose the length itself, and this is the length used without a planner.
        duration_given: The user chose the length.
        duration_max_s: The longest the planner may choose when the user did not; a song is charged
            this until its real length is known. It is the one bound for both: the bot sets it from
            its `max_duration_s` and the engine's planner keeps under it, whatever its own setting.
        bpm: Beats per minute, or None for the model's choice.
        key: Key and scale in the form `F# minor`, or None.
        language: A language code such as `en` (the vocals', a cover's new lyrics' too), or None.
        time_signature: Beats per bar (2, 3, 4 or 6), or None.
        strength: Covers: the share of the sampling steps that follow the source (0..1).
        plan: A stored LM plan, reused exactly by a re-roll.
        new_take: Draw new audio codes for the stored plan with this job's seed (a re-roll as a
            new take: the same caption, lyrics and metadata, another performance).
        edit: A repaint or an extend of a finished song, or None.
        like: The job's source audio is a timbre reference (a song "like this clip"), not a cover source.
        best_of: This take is one of N made for a `best=N` request (1: an ordinary job); the takes
            are scored and the best one is posted.
        style: The LoRA style (a folder under `MODEL_DIR/loras/`) applied to the DiT, or None.
        style_scale: The style's scale (0..1), or None for the adapter's own.
        style_sha256: A re-roll's: the hash of the style's files when its song was made; the engine
            refuses the job when the files changed since (None: use the style as it is now).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    caption: str = ""
    lyrics: str = ""
    instrumental: bool = False
    duration_s: float = Field(gt=0, le=MAX_DURATION_S)
    duration_given: bool = True
    duration_max_s: float | None = Field(None, gt=0, le=MAX_DURATION_S)
    bpm: int | None = Field(None, ge=BPM_MIN, le=BPM_MAX)
    key: str | None = None
    language: str | None = None
    time_signature: int | None = None
    strength: float = Field(DEFAULT_COVER_STRENGTH, ge=0.0, le=1.0)
    plan: Plan | None = None
    new_take: bool = False
    edit: Edit | None = None
    like: bool = False
    best_of: int = Field(1, ge=1, le=BEST_OF_MAX)
    style: str | None = Field(None, min_length=1, max_length=64)
    style_scale: float | None = Field(None, ge=0.0, le=1.0)
    style_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("caption", "lyrics")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        # The bot cleans user text already; a spec built anywhere else is held to the same rule.
        return clean_lines(value)

    @field_validator("key")
    @classmethod
    def _known_key(cls, value: str | None) -> str | None:
        if value is not None and value not in KEYS:
            raise ValueError(f"the key must be written like 'F# minor' or 'Bb major', not {value[:20]!r}")
        return value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is not None and value not in LANGUAGES:
            raise ValueError(f"the language must be a code such as en or ja, not {value[:12]!r}")
        return value

    @field_validator("time_signature")
    @classmethod
    def _known_time_signature(cls, value: int | None) -> int | None:
        if value is not None and value not in TIME_SIGNATURES:
            raise ValueError("the time signature must be 2, 3, 4 or 6 beats per bar")
        return value

    @model_validator(mode="after")
    def _bound_covers_the_default(self) -> JobSpec:
        if self.duration_max_s is not None and self.duration_max_s < self.duration_s:
            raise ValueError("the longest length the planner may choose is shorter than the song's length")
        return self

    @classmethod
    def build(cls, **fields: Any) -> JobSpec:
        """A spec from the bot's fields, or a UserError with one sentence naming what is wrong.

        Raises:
            UserError: a value outside the model's sets or bounds.
        """
        try:
            return cls(**fields)
        except ValidationError as error:
            raise UserError(f"I can't queue that: {problem(error)}.") from None

    @classmethod
    def from_stored(cls, data: dict[str, Any]) -> JobSpec:
        """Read a stored spec, including one written before the spec was typed."""
        # `style` is the LoRA style in a spec written since migration 0007 (which always has
        # `style_scale`); in an untyped one it was the cover's caption.
        legacy = LEGACY_KEYS if "style_scale" not in data else tuple(k for k in LEGACY_KEYS if k != "style")
        fields = {name: value for name, value in data.items() if name not in legacy}
        if "caption" not in fields:
            fields["caption"] = next((str(data[name]) for name in LEGACY_KEYS if data.get(name)), "")
        # Before the spec was typed, Discord could store a key or a language as the user wrote it.
        if isinstance(fields.get("key"), str):
            fields["key"] = canonical_key(fields["key"])
        if isinstance(fields.get("language"), str):
            language = fields["language"].strip().lower()
            fields["language"] = language if language in LANGUAGES else None
        return cls.model_validate(fields)

    @staticmethod
    def meta_fields(meta: TrackMeta) -> dict[str, Any]:
        """A finished track's metadata as the fields of a new spec (an edit keeps its song's metadata).

        The LM may write what a spec does not take (`C♯ major`, the language `unknown`): a key is
        spelled the spec's way, and anything else outside its sets is left to the model.
        """
        bpm = meta.bpm if meta.bpm is not None and BPM_MIN <= meta.bpm <= BPM_MAX else None
        return {
            "bpm": bpm,
            "key": canonical_key(meta.key) if meta.key else None,
            "language": meta.language if meta.language in LANGUAGES else None,
            "time_signature": meta.time_signature if meta.time_signature in TIME_SIGNATURES else None,
        }

    def stored(self) -> dict[str, Any]:
        """The spec as JSON-ready data (the form the jobs table keeps)."""
        return self.model_dump(mode="json")

    @property
    def length_up_to_the_planner(self) -> bool:
        """Whether the LM planner will choose this song's length (no length given, no plan to follow)."""
        return not self.duration_given and self.plan is None


def check_takes(count: int) -> None:
    """Refuse a request for more takes than a command may make (or none).

    The parsers refuse this too; the contract holds it for every adapter and every caller of the
    queue, so a platform's option that arrives outside its declared range is refused all the same.

    Raises:
        UserError: with the sentence to show.
    """
    if not 1 <= count <= TAKES_MAX:
        raise UserError(f"takes must be between 1 and {TAKES_MAX}.")


def check_seed(seed: int) -> None:
    """Refuse a seed outside uint32 (the model draws its noise from 32 bits).

    Raises:
        UserError: with the sentence to show.
    """
    if not 0 <= seed <= SEED_MAX:
        raise UserError(f"seed must be between 0 and {SEED_MAX}.")


def problem(error: ValidationError) -> str:
    """The first thing wrong in a validation error, as a clause: `bpm: input should be ...`."""
    first = error.errors()[0]
    place = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    return f"{place}: {message}" if place else message
