"""The LM context budget: will a request's prompts and codes fit? Needs only the tokenizer.

The check runs before a request is queued (in the bot process, through the composition root),
so this module imports neither torch nor the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from engine.acestep.lm.prompts import DEFAULT_NEGATIVE, INSTRUMENTAL_LYRICS
from engine.acestep.lm.tokenizer import encode
from engine.acestep.lm.values import BPM_RANGE, DURATION_MIN, KEYSCALES, LANGUAGES, TIME_SIGNATURES
from storage.contract.errors import UserError

CODES_PER_SECOND = 5
# Tokens of the prompt scaffolding and CoT keys around caption and lyrics (measured: ~45 + ~25).
SCAFFOLD_TOKENS = 96


@dataclass(frozen=True)
class PlanRequest:
    """What one user asked for.

    Args:
        description: The user's sentence (or caption, when lyrics are given).
        seed: uint32 seed; the same request and seed give the same plan on the same device.
        instrumental: No vocals (the lyrics become ``[Instrumental]``).
        language: Vocal language code, or None for the model's choice.
        duration: Seconds, or None for the model's choice.
        bpm: Fixed tempo, or None.
        keyscale: Fixed key such as ``F# minor``, or None.
        timesignature: Fixed beats per bar (2, 3, 4 or 6), or None.
        lyrics: The user's own lyrics, or None to have the model write them.
        duration_max: The longest length (seconds) the model may choose for this song: the
            length it was priced at (the spec's `duration_max_s`), or None for the planner's own.
    """

    description: str
    seed: int
    instrumental: bool = False
    language: str | None = None
    duration: float | None = None
    bpm: int | None = None
    keyscale: str | None = None
    timesignature: int | None = None
    lyrics: str | None = None
    duration_max: int | None = None

    def given(self) -> dict[str, Any]:
        """The metadata fields the user fixed, validated."""
        out: dict[str, Any] = {}
        if self.bpm is not None:
            if not BPM_RANGE[0] <= int(self.bpm) <= BPM_RANGE[1]:
                raise UserError(f"The tempo must be between {BPM_RANGE[0]} and {BPM_RANGE[1]} bpm.")
            out["bpm"] = int(self.bpm)
        if self.duration is not None:
            out["duration"] = round(self.duration)
        if self.keyscale is not None:
            if self.keyscale not in KEYSCALES:
                raise UserError("The key must look like 'C major' or 'F# minor'.")
            out["keyscale"] = self.keyscale
        if self.language is not None and self.language != "unknown":
            if self.language not in LANGUAGES:
                raise UserError(f"The language code {self.language!r} is not one the model knows.")
            out["language"] = self.language
        if self.timesignature is not None:
            if int(self.timesignature) not in TIME_SIGNATURES:
                raise UserError("The time signature must be 2, 3, 4 or 6 beats per bar.")
            out["timesignature"] = int(self.timesignature)
        return out


@dataclass(frozen=True)
class PlannerSettings:
    """Decoding settings; the defaults are upstream's ``GenerationParams``."""

    cfg_scale: float = 2.0
    temperature: float = 0.85
    top_p: float | None = 0.9
    negative_prompt: str = DEFAULT_NEGATIVE
    max_model_len: int = 4096
    duration_max: int = 600
    caption_max: int = 320
    genres_max: int = 64
    lyrics_max: int = 1024
    backend: str = "torch"
    # Upstream's `thinking`: when off, the LM writes the metadata (CoT) but no audio codes, and the
    # DiT makes the song from caption, lyrics and metadata alone.
    thinking: bool = True
    # ``auto``: the fast path on CUDA, the reference loop elsewhere; or ``fast`` / ``reference``.
    decoder: str = "auto"
    # The fast path's largest row bucket (requests decoding together; guidance doubles the rows).
    max_rows: int = 64


@dataclass(frozen=True)
class ContextBudget:
    """Checks requests against the LM's context with the real tokenizer."""

    tokenizer: Tokenizer
    settings: PlannerSettings

    @classmethod
    def load(cls, model_dir: Path, name: str | None = None, settings: PlannerSettings | None = None) -> ContextBudget:
        """Load only the tokenizer of the LM folder in ``model_dir`` (``name`` preferred)."""
        from engine.acestep.lm.layout import find_lm
        from engine.acestep.lm.tokenizer import load_tokenizer

        folder = find_lm(model_dir, name) or find_lm(model_dir)
        if folder is None:
            raise FileNotFoundError(f"no acestep-5Hz-lm-* folder in {model_dir}")
        return cls(load_tokenizer(folder), settings or PlannerSettings())

    def tokens(self) -> int:
        """Tokens one decode may hold (upstream keeps 64 of max_model_len spare)."""
        return self.settings.max_model_len - 64

    def _lyrics_tokens(self, req: PlanRequest) -> int:
        if req.instrumental:
            return len(encode(self.tokenizer, INSTRUMENTAL_LYRICS))
        if req.lyrics:
            return len(encode(self.tokenizer, req.lyrics))
        return self.settings.lyrics_max

    def max_duration(self, req: PlanRequest) -> int:
        """The longest song (seconds) whose prompts and codes fit the LM's context."""
        s = self.settings
        desc = len(encode(self.tokenizer, req.description))
        caption = s.caption_max if not req.lyrics else max(desc, s.caption_max)
        # The codes prompt holds the caption twice (user turn and CoT) and the lyrics once.
        fixed = SCAFFOLD_TOKENS + 2 * caption + self._lyrics_tokens(req) + 1
        longest = min(s.duration_max, (self.tokens() - fixed) // CODES_PER_SECOND)
        return longest if req.duration_max is None else min(longest, req.duration_max)

    def check_fits(self, req: PlanRequest) -> None:
        """Raise UserError (one sentence) when the request cannot fit the LM's context.

        Call it before queueing: it needs only the tokenizer.
        """
        req.given()
        s = self.settings
        phase_a = len(encode(self.tokenizer, req.description)) + SCAFFOLD_TOKENS + s.caption_max
        phase_a += s.genres_max + self._lyrics_tokens(req)
        longest = self.max_duration(req)
        if phase_a > self.tokens() or longest < DURATION_MIN:
            raise UserError("This description and lyrics are too long for the song planner; please shorten them.")
        if req.duration is not None and round(req.duration) > longest:
            raise UserError(f"With these lyrics the planner can make songs of at most {longest} seconds.")
        if req.duration is not None and round(req.duration) < DURATION_MIN:
            raise UserError(f"Songs must be at least {DURATION_MIN} seconds long.")
