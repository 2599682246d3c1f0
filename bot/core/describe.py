"""`/describe`: what the engine heard in a recording, as text, and the `/song` that "Make one like this" queues.

The engine stores a `Description` (`storage/contract/spec.py`) as the job's result. Here it becomes the
fields of a song this bot accepts (`LikeThis`): the same caption, lyrics, bpm, key, time signature,
duration and language, held to this bot's limits (a caption cut to `MAX_PROMPT_CHARS` at a word, a
length within the song lengths), so the message shows exactly what the button queues. The LM may write
what a song does not take (`B♭ major`, the language `unknown`, a bpm of 0): a key is spelled the
spec's way and anything else outside its sets is left out (the model's choice), never a refusal.
Each platform renders `describe_text` in its own message (and its button); the console prints the
`/song` line instead (`song_line`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.parser import SongRequest
from bot.core.render import format_duration
from storage.contract.spec import Description
from storage.contract.text import clean_line, clean_lines
from storage.contract.values import BPM_MAX, BPM_MIN, LANGUAGES, MIN_DURATION_S, TIME_SIGNATURES, canonical_key
from storage.settings import Settings

LIKE_THIS_LABEL = "🎵 Make one like this"
INSTRUMENTAL_MARKS = ("", "[instrumental]", "[inst]", "instrumental")
READERS = {
    "acestep": "ACE-Step's planner",
    "sketch": "the sketch backend's guess from simple analysis (length, tempo, key), not ACE-Step",
    "analysis": "a guess from simple analysis (length, tempo, key): no planner LM is installed",
}


@dataclass(frozen=True)
class LikeThis:
    """The fields of the song that "Make one like this" queues: the description, within this bot's limits."""

    caption: str
    lyrics: str
    bpm: int | None
    key: str | None
    time_signature: int | None
    duration_s: int
    language: str | None

    @property
    def instrumental(self) -> bool:
        """No words were heard."""
        return not self.lyrics

    def song_request(self) -> SongRequest:
        """The `/song` request with exactly these fields."""
        return SongRequest(
            description=self.caption,
            lyrics=self.lyrics,
            instrumental=self.instrumental,
            duration_s=self.duration_s,
            bpm=self.bpm,
            key=self.key,
            language=self.language,
            time_signature=self.time_signature,
        )


@dataclass(frozen=True)
class Described:
    """A finished `describe` job, ready for an adapter to post: its id, the reading and the song it offers."""

    job_id: int
    description: Description
    like: LikeThis


def like_this(description: Description, settings: Settings) -> LikeThis:
    """The song fields of a description, held to the bot's limits (see the module docstring)."""
    plan = description.plan
    # One space between words, and no `=` (the console's `/song` line would read `x=y` as an option).
    caption = " ".join(clean_line(plan.caption or "").replace("=", " ").split())
    caption = clip_words(caption, settings.max_prompt_chars) or "a song like the recording"
    lyrics = clean_lines(plan.lyrics or "").strip()
    if lyrics.lower() in INSTRUMENTAL_MARKS:
        lyrics = ""
    language = (plan.language or "").strip().lower()
    seconds = round(plan.duration_s or settings.default_duration_s)
    return LikeThis(
        caption=caption,
        lyrics=clip_lines(lyrics, settings.max_lyrics_chars),
        bpm=plan.bpm if plan.bpm is not None and BPM_MIN <= plan.bpm <= BPM_MAX else None,
        key=canonical_key(plan.key) if plan.key else None,
        time_signature=plan.time_signature if plan.time_signature in TIME_SIGNATURES else None,
        duration_s=min(max(seconds, MIN_DURATION_S), settings.max_duration_s),
        language=language if language in LANGUAGES and lyrics else None,
    )


def clip_words(text: str, limit: int) -> str:
    """At most `limit` characters, cut after a whole word."""
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[: limit + 1] else text[:limit]
    return cut[:limit].rstrip(" ,;:")


def clip_lines(text: str, limit: int) -> str:
    """At most `limit` characters, cut after a whole line."""
    if len(text) <= limit:
        return text
    kept = text[: limit + 1].rsplit("\n", 1)[0] if "\n" in text[: limit + 1] else text[:limit]
    return kept[:limit].rstrip()


def describe_text(described: Described) -> str:
    """The plain text of a description: caption, bpm, key, time signature, duration, language, lyrics."""
    like, description = described.like, described.description
    recording_s = description.plan.duration_s
    lines = [
        f"🔎 #{described.job_id}: what I heard ({READERS.get(description.backend, description.backend)})",
        f"Caption: {like.caption}",
        f"BPM: {like.bpm or '—'} · Key: {like.key or '—'} · Time signature: {_signature(like.time_signature)}",
        f"Duration: {format_duration(recording_s)} · Language: {like.language or '—'}",
    ]
    if description.cut_s is not None:
        lines.append(
            f"(The reading heard the first {format_duration(description.cut_s)}; the planner can't read more.)"
        )
    if recording_s is not None and round(recording_s) != like.duration_s:
        lines.append(f"A song like it would be {format_duration(like.duration_s)} long (this bot's song lengths).")
    lines.append("Lyrics:\n" + like.lyrics if like.lyrics else "Lyrics: none heard (instrumental).")
    return "\n".join(lines)


def song_line(like: LikeThis) -> str:
    """The console's `/song` command for these fields, lyrics on the following lines (none of them empty).

    The first line ends with a backslash when lyrics follow, so it can be pasted at the chat's prompt
    as it is (an empty line there would send the song early, so blank lines of the lyrics are dropped).
    """
    options = [f"duration={like.duration_s}"]
    if like.bpm is not None:
        options.append(f"bpm={like.bpm}")
    if like.key is not None:
        options.append(f'key="{like.key}"')
    if like.time_signature is not None:
        options.append(f"timesig={_signature(like.time_signature)}")
    if like.language is not None:
        options.append(f"language={like.language}")
    if like.instrumental:
        options.append("instrumental=true")
    first = f"/song {like.caption} {' '.join(options)}"
    if not like.lyrics:
        return first
    lyric_lines = [line for line in like.lyrics.splitlines() if line.strip()]
    return "\n".join([first + " \\", *lyric_lines])


def _signature(beats: int | None) -> str:
    """Beats per bar as the time signature users type: 6 → 6/8, else n/4."""
    if beats is None:
        return "—"
    return "6/8" if beats == 6 else f"{beats}/4"
