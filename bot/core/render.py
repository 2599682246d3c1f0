"""Texts users see, as plain text; each adapter escapes or formats them for its platform."""

from __future__ import annotations

import re

from storage.contract.text import counted
from storage.contract.types import (
    CANCELLED,
    DEAD,
    DESCRIBE,
    FAILED,
    QUEUED,
    RUNNING,
    SUCCEEDED,
    JobView,
    TrackView,
)
from storage.contract.values import MIN_SOURCE_S

# Which backend makes the songs, said before the first result (the welcome line and /help).
BACKENDS = {
    "acestep": "the open ACE-Step 1.5 model",
    "sketch": "the sketch synthesizer (no model weights), simple stand-ins for ACE-Step's songs",
    "auto": "the open ACE-Step 1.5 model where its weights are installed, else the sketch synthesizer",
}
HELP_TEXT = """\
🎵 songbot makes songs with {backend}.

/song <description> — a new song. Options on the first line: duration=30 bpm=90 key="F# minor" \
seed=7 language=en instrumental=true timesig=3/4. Lyrics go on the following lines.
  /song lo-fi rain at night duration=45
  /song upbeat folk song about trains
  [verse]
  the morning train is running late

/cover [style] [strength=0.6] — reply to a song or voice note to re-imagine it (strength: how \
closely it follows the original, 0 to 1; 1 by default, about 0.2 keeps only its style).
  New words for it go on the following lines, with language=es (or en, ja, …) for the language \
they are sung in; instrumental=true asks for no voice.
  /cover bossa nova language=es
  La luna sobre el mar
/reroll <song id> [seed] — a new take of the song (new seed, new codes); with the song's own seed, exactly \
the same song. takes=2 on /song or /cover makes 2 (up to 4) at once. best=3 on /song or /cover makes 3 \
takes (2 to 4), scores each against your request and posts only the best; the others are in /history \
(each counts as a song against your limits).
/repaint <song id> <start>-<end> [caption] — make a part again (seconds or m:ss, e.g. /repaint 12 0:30-0:45 \
a guitar solo); the rest stays. /extend <song id> <seconds> [caption] — make a song longer. Both also work \
as a reply to one of my songs, and with the ✏️ and ➕ buttons.
/song … as a reply to a recording — a new song that sounds like it.
/describe as a reply to a recording (on Discord: a file, or "Describe this" on a message) — what is in it: \
caption, bpm, key, time signature, duration, language and lyrics, with a button to make one like it.
/styles — the house styles; style=<name> (and style_scale=0 to 1) on /song, /cover, /repaint or /extend \
makes the song in one.
/history — your latest songs.   /queue — where your songs are in line.   /cancel [id] — cancel a \
waiting song.   /lyrics <id> — a song's lyrics, each line timed [mm:ss.xx], and an .lrc file for music players.

{limits}
{privacy}"""
LIMITS_TEXT = """\
Limits: {max_pending} waiting at a time, {quota} a day, {min_s} to {max_s} seconds per song, \
uploads up to {max_mb:g} MB; a recording to cover from {min_source_s} seconds, a clip to sound like from {min_s}."""
PRIVACY_TEXT = """\
Privacy: your requests, songs and seeds are stored on this bot's server so you can re-roll them; \
{uploads}"""


def help_text(
    max_pending: int,
    quota: int,
    min_s: int,
    max_s: int,
    max_mb: float,
    upload_days: float,
    backend: str = "acestep",
) -> str:
    """The help text with this bot's backend, limits and upload retention filled in."""
    return HELP_TEXT.format(
        backend=backend_text(backend),
        limits=limits_text(max_pending, quota, min_s, max_s, max_mb),
        privacy=privacy_text(upload_days),
    )


def styles_text(names: list[str], backend: str) -> str:
    """/styles: the installed house styles, or a sentence saying why there are none to use."""
    if backend == "sketch":
        return "Styles need the ACE-Step model, and this bot makes sketches, so there are no styles to use here."
    if not names:
        return "No styles are installed on this bot; its operator adds them as LoRA folders under MODEL_DIR/loras/."
    listed = "\n".join(f"• {name}" for name in names)
    return (
        f"🎨 Styles ({len(names)}):\n{listed}\n"
        f"Use one with style=<name> on /song, /cover, /repaint or /extend, for example: /song rainy synthwave "
        f"style={names[0]} (style_scale=0 to 1 sets how strongly; 1 by default)."
    )


def backend_text(backend: str) -> str:
    """What makes the songs: `acestep`, `sketch`, or `auto` when the engine has not said which."""
    return BACKENDS.get(backend, BACKENDS["auto"])


def limits_text(max_pending: int, quota: int, min_s: int, max_s: int, max_mb: float) -> str:
    """The line of /help with the limits."""
    return LIMITS_TEXT.format(
        max_pending=counted(max_pending, "song"),
        quota=counted(quota, "song") if quota else "unlimited songs",
        min_s=min_s,
        max_s=max_s,
        max_mb=max_mb,
        min_source_s=MIN_SOURCE_S,
    )


def privacy_text(upload_days: float) -> str:
    """The line of /help that says what is stored and how long uploads are kept (0 days: for ever)."""
    if upload_days <= 0:
        uploads = "the recordings you upload for a cover are kept too."
    else:
        uploads = (
            f"the recordings you upload for a cover are deleted after {days_text(upload_days)}, "
            "and after that their covers can't be re-rolled."
        )
    return PRIVACY_TEXT.format(uploads=uploads)


def source_gone_text(song_id: int, upload_days: float, like: bool = False) -> str:
    """The one sentence for a re-roll of a cover (or of a song like a clip) whose uploaded recording was deleted."""
    when = f" after {days_text(upload_days)}" if upload_days > 0 else ""
    again = "send the clip again with /song" if like else "send the audio again with /cover"
    return f"The recording behind song #{song_id} was deleted{when}, so it can't be re-rolled; {again}."


def days_text(days: float) -> str:
    """`7` → `7 days`, `1` → `1 day`, `0.5` → `12 hours`."""
    if days < 1:
        hours = round(days * 24)
        return f"{hours} hour" + ("" if hours == 1 else "s")
    return f"{days:g} day" + ("" if days == 1 else "s")


STAGE_TEXT = {
    "starting": "🎛 Starting…",
    "planning": "📝 Writing the song…",
    "listening": "👂 Listening to the original…",
    "encoding": "🎛 Reading the prompt…",
    "decoding": "🎚 Mixing down…",
    "saving": "💾 Saving…",
    "scoring": "🏅 Scoring the take…",
    "uploading": "📤 Uploading…",
}


def status_text(job: JobView, position: int | None, eta_s: float | None) -> str:
    """One line that says where a job is: queued, planning, generating N%, uploading, done."""
    label = f"#{job.id}"
    if job.status == QUEUED:
        where = f"position {position}" if position else "waiting"
        eta = f", about {format_duration(eta_s)}" if eta_s is not None else ""
        return f"⏳ {label} queued ({where}{eta})"
    if job.status == RUNNING:
        if job.stage in ("generating", "encoding_text"):
            return f"🎶 {label} generating… {job.progress:.0f}%"
        return f"{STAGE_TEXT.get(job.stage, '🎶 Working…')} {label}"
    if job.status == SUCCEEDED:
        return f"✅ {label} done"
    if job.status == CANCELLED:
        return f"🚫 {label} cancelled"
    return f"⚠️ {label} failed: {job.error or 'something went wrong.'}"


def best_status_text(best_of: int, made: int, next_status: str | None) -> str:
    """The status of a `best=N` request: the takes made so far, and the line of the next one."""
    head = f"🏅 Best of {best_of}: {made} of {best_of} takes made"
    return head + (f"\n{next_status}" if next_status else ", choosing the best…")


def best_line(track: TrackView) -> str:
    """`🏆 best of 3 · score 0.74` under the chosen take of a `best=N` request; "" for any other song."""
    score = track.score
    if score is None or not score.chosen or not score.best_of:
        return ""
    return f"🏆 best of {score.best_of} · score {score.total:.2f}"


def take_text(track: TrackView) -> str:
    """A `best=N` take in /history: `take 2/3, not chosen`, `take 1/3, chosen 🏆`; "" for any other song."""
    score = track.score
    if score is None or not score.best_of or score.best_of < 2:
        return ""
    if score.take is None:
        return f"one of best of {score.best_of}, waiting for the others"
    return f"take {score.take}/{score.best_of}, " + ("chosen 🏆" if score.chosen else "not chosen")


def failure_text(job: JobView) -> str:
    """The one sentence a user gets when their job ends without a song."""
    if not job.makes_track and job.status in (FAILED, DEAD):  # its sentence names the song it was about
        return f"⚠️ {job.error or 'something went wrong on our side.'}"
    what = "Description" if job.kind == DESCRIBE else "Song"
    if job.status == CANCELLED:
        return f"🚫 {what} #{job.id} was cancelled."
    if job.status in (FAILED, DEAD):
        return f"⚠️ {what} #{job.id} failed: {job.error or 'something went wrong on our side.'}"
    return f"{what} #{job.id} is {job.status}."


# The line of a result's caption that names its song: `#12 · seed 345`.
RESULT_LINE = re.compile(r"^#([0-9]{1,18}) · seed [0-9]+$", re.MULTILINE)


def captioned_song(caption: str | None) -> int | None:
    """The song id that a result caption of ours names (its `#id · seed n` line), or None."""
    match = RESULT_LINE.search(caption or "")
    return int(match[1]) if match else None


def result_caption(track: TrackView) -> str:
    """Title, style, bpm/key, duration, song id and seed, and the sketch notice if any."""
    meta = track.meta
    facts = [
        part
        for part in (
            f"{meta.bpm} bpm" if meta.bpm else "",
            meta.key or "",
            format_duration(track.duration_s),
        )
        if part
    ]
    lines = [f"🎵 {track.title}"]
    if track.caption.strip():
        lines.append(f"Style: {shorten(track.caption, 200)}")
    lines += [" · ".join(facts), f"#{track.job_id} · seed {track.seed}"]
    if best_line(track):
        lines.append(best_line(track))
    if track.notice:
        lines.append(f"ℹ️ {track.notice}")
    return "\n".join(lines)


def result_line(track: TrackView, path: str) -> str:
    """The console's one line per result: `#<id>`, `seed <n>` and the absolute path."""
    return f"✅ #{track.job_id} seed {track.seed} {path}"


def history_text(tracks: list[TrackView]) -> str:
    """The user's latest songs, one per line."""
    if not tracks:
        return "You have no songs yet; try /song lo-fi rain at night"
    rows = [
        " · ".join(
            part
            for part in (
                f"#{track.job_id}",
                shorten(track.title, 40),
                f"seed {track.seed}",
                format_duration(track.duration_s),
                origin_text(track),
                take_text(track),
            )
            if part
        )
        for track in tracks
    ]
    return "Your latest songs:\n" + "\n".join(rows)


def origin_text(track: TrackView) -> str:
    """What a song came from: `re-roll of #3`, `repaint of #3 (0:08-0:12)`, `#3 extended by 0:10`, ..."""
    edit = track.edit
    if edit is not None and edit.task == "repaint":
        span = f"{format_duration(edit.start_s)}-{format_duration(edit.end_s)}"
        origin = f"repaint of #{edit.song_id} ({span})"
    elif edit is not None and edit.task == "extend":
        origin = f"#{edit.song_id} extended by {format_duration(edit.end_s - edit.start_s)}"
    elif track.kind == "cover":
        origin = "cover"
    else:
        origin = ""
    if track.kind == "reroll":
        origin = f"re-roll of #{track.parent_id}" + (f", {origin}" if origin else "")
    if track.like:
        origin = ", ".join(part for part in (origin, "like a clip") if part)
    return origin


def queue_text(lines: list[str], total_queued: int) -> str:
    """The user's pending jobs and the size of the whole queue."""
    if not lines:
        return f"You have no songs in the queue. Songs waiting in total: {total_queued}."
    return "\n".join([*lines, f"Songs waiting in total: {total_queued}."])


def stats_text(counts: dict[str, int], users: int, paused: bool) -> str:
    """Admin statistics."""
    parts = ", ".join(f"{state} {count}" for state, count in sorted(counts.items())) or "no jobs yet"
    return f"Users: {users}. Jobs: {parts}. Queue {'paused' if paused else 'running'}."


def format_duration(seconds: float | None) -> str:
    """`75` → `1:15`."""
    if seconds is None:
        return "?"
    total = round(seconds)
    return f"{total // 60}:{total % 60:02d}"


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
