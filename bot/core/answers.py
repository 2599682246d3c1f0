"""Answers: what the bot posts that is not a song (the lyrics, the result of a job that makes no track).

An `Answer` is one reply: a text and, maybe, a file (a Telegram document, a Discord attachment; the
console writes the file beside the song's MP3 and prints its path). `/lyrics` answers at once with
one; a job that makes no track is answered by the delivery loop through the renderer registered for its
kind (`bot.core.delivery.ANSWERERS`), which builds its `Answer` with the functions here.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core import lyrics
from storage.contract.results import TimingResult
from storage.contract.types import JobView, TrackView
from storage.queue.library import Library


@dataclass(frozen=True)
class Attachment:
    """A file that goes with an answer.

    Args:
        filename: Its name as posted (`song-12.lrc`).
        data: Its bytes.
    """

    filename: str
    data: bytes


@dataclass(frozen=True)
class Answer:
    """One reply that is not a song.

    Args:
        text: What it says (plain text; each adapter escapes it).
        attachment: A file that goes with it, or None.
        song: The song it is about, when there is one (the console writes the file beside its MP3).
        queued: A job submitted to make the real answer (a `timing` job): the delivery loop posts that one.
    """

    text: str
    attachment: Attachment | None = None
    song: TrackView | None = None
    queued: JobView | None = None


def timing_answer(library: Library, job: JobView) -> Answer:
    """A succeeded `timing` job: its song's timed lines and LRC file (or the sentence why there are none)."""
    song_id = TimingResult.from_stored(job.result).song_id if job.result else job.parent_id
    track = library.get(song_id) if song_id is not None else None
    if track is None:
        return Answer(f"Song #{song_id} is gone, so there are no lyrics to show.")
    return lyrics_answer(track, lyrics.NOT_SUNG)


def lyrics_answer(track: TrackView, untimed: str = lyrics.MADE_BEFORE) -> Answer:
    """A finished song's lyrics as they stand: timed with an LRC file, untimed, or the instrumental sentence.

    Args:
        track: The song.
        untimed: The sentence under lyrics that have no timing (`{song}` is the song id).
    """
    if not lyrics.has_lyrics(track):
        return Answer(lyrics.instrumental_text(track.job_id), song=track)
    if track.timing is None or not track.timing.lines:
        return Answer(lyrics.untimed_text(track, untimed), song=track)
    lrc = Attachment(lyrics.lrc_filename(track), lyrics.lrc_file(track).encode())
    return Answer(lyrics.timed_text(track), lrc, song=track)
