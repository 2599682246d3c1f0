"""What comes back from the engine: typed, frozen results, the other half of the contract in `spec.py`.

The engine fills them in, the queue stores them (as JSON, through `stored()` and `from_stored()`,
the one serialiser) and the bot reads their fields. Nothing on either side reads a result by key.

One spelling per quantity, the job spec's, on both sides of the contract: `key`, `time_signature` and
`duration_s` (its unit in its name). The 5 Hz LM's own spellings (`keyscale`, `timesignature`,
`duration`) stay inside the engine's LM code, which writes and reads its YAML with them; plans stored
under them (by the first typed plans) are read the one way and written back only in it.
"""

from __future__ import annotations

import re
from typing import Any, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

# Titles skip a leading article: "a dreamy lo-fi beat" is titled "Dreamy Lo-fi Beat".
_SKIP_WORDS = {"a", "an", "the", "some"}
TITLE_WORDS = 4
TITLE_MAX = 60


class Record(BaseModel):
    """A frozen value stored as JSON: `stored()` writes it, `from_stored()` reads it (old rows too)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    def stored(self) -> dict[str, Any]:
        """The value as JSON-ready data, under its field names."""
        return self.model_dump(mode="json")

    @classmethod
    def from_stored(cls, data: dict[str, Any] | None) -> Self:
        """Read a stored value; a key this version does not know is dropped, a missing one is None."""
        return cls.model_validate(data or {})

    @classmethod
    def from_column(cls, data: dict[str, Any] | None) -> Self | None:
        """Read a nullable JSON column: None stays None (nothing stored), anything else as `from_stored`."""
        return cls.from_stored(data) if data is not None else None


class TrackMeta(Record):
    """A track's musical metadata, as used (a result) or as planned (the fields a `Plan` shares).

    Args:
        bpm: Beats per minute.
        key: Key and scale such as `F# minor` (the LM may write `F♯ minor`).
        time_signature: Beats per bar (2, 3, 4 or 6).
        duration_s: Length in seconds.
        language: The vocal language code, `unknown`, or "" when none was chosen.
    """

    bpm: int | None = None
    key: str | None = Field(default=None, validation_alias=AliasChoices("key", "keyscale"))
    time_signature: int | None = Field(default=None, validation_alias=AliasChoices("time_signature", "timesignature"))
    duration_s: float | None = Field(default=None, validation_alias=AliasChoices("duration_s", "duration"))
    language: str | None = None


class ModelInfo(Record):
    """The model that made a track: what a re-roll needs besides its spec and seed to sound the same.

    Args:
        backend: `acestep` or `sketch`.
        dit: The DiT checkpoint folder.
        dit_version: The DiT's model version (`turbo`).
        vae: The VAE folder.
        text_encoder: The text encoder folder.
        steps: Sampling steps.
        shift: The timestep shift.
        sampler: `ode`.
        dtype: `bfloat16` or `float32`.
        device: `cuda` or `cpu`.
    """

    backend: str = "unknown"
    dit: str | None = None
    dit_version: str | None = None
    vae: str | None = None
    text_encoder: str | None = None
    steps: int | None = None
    shift: float | None = None
    sampler: str | None = None
    dtype: str | None = None
    device: str | None = None

    def stored(self) -> dict[str, Any]:
        """Only what the backend set: the sketch's model is `{"backend": "sketch"}`."""
        return self.model_dump(mode="json", exclude_none=True)


class TimedLine(Record):
    """One sung lyric line and when it is sung.

    Args:
        start_s: When the line starts, in seconds from the start of the song.
        end_s: When its last word ends.
        text: The line as written in the lyrics (no section tags).
    """

    start_s: float
    end_s: float
    text: str


class LyricTiming(Record):
    """When each sung line of a song's lyrics starts: the DiT's cross-attention aligned by DTW.

    Args:
        lines: One per sung line, in order; starts never decrease and lie within the song.
    """

    lines: tuple[TimedLine, ...] = ()


class TimingResult(Record):
    """What a `timing` job leaves in `jobs.result`: the song whose lyrics it timed (the timing is on its track).

    Args:
        song_id: The timed song.
        lines: How many sung lines were timed (0: the song has none).
    """

    song_id: int
    lines: int = 0


class TakeScore(Record):
    """How well a finished take matches its request, the official way (`test_time_scaling.py`).

    Args:
        total: The combined score; of the takes of one `best=N` request, the highest is posted.
        conditions: The score per condition (`caption`, `lyrics`, `bpm`, ...), before combining.
        lyric_alignment: The DiT attention's lyric score (`get_lyric_score`), or None without lyrics.
        best_of: N of the `best=N` request this take belongs to, or None.
        chosen: This take was the one posted.
        take: Its number among the takes of its request (1..N), set when the best one was chosen;
            None until then.
    """

    total: float
    conditions: dict[str, float] = Field(default_factory=dict)
    lyric_alignment: float | None = None
    best_of: int | None = None
    chosen: bool = False
    take: int | None = None


class StyleRef(Record):
    """The LoRA style a track was made with, so that a re-roll can tell whether it is still the same.

    Args:
        name: The folder name under `MODEL_DIR/loras/`.
        scale: The scale it was applied with (0..1).
        sha256: A hash of the adapter's files when the track was made.
    """

    name: str
    scale: float
    sha256: str


def title_from_caption(caption: str, kind: str = "song") -> str:
    """A song's title, decided here for every backend: its caption's first words, capitalised.

    A leading article is skipped; a cover without a style is `Cover`, anything else without words
    `Untitled`.
    """
    tokens = re.findall(r"[\w'’-]+", caption)
    while tokens and tokens[0].lower() in _SKIP_WORDS:
        tokens.pop(0)
    title = " ".join(token[:1].upper() + token[1:] for token in tokens[:TITLE_WORDS])[:TITLE_MAX]
    if not title:
        return "Cover" if kind == "cover" else "Untitled"
    return title
