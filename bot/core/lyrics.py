"""A song's lyrics as users see them: timed lines (`[mm:ss.xx]` before each), the LRC file, the sentences.

The timing itself is the engine's (`Generator.time_lyrics`, stored on the track as a `LyricTiming`);
a song stored without it is timed on request by a `timing` job, whose spec is built here.
"""

from __future__ import annotations

from storage.contract.spec import JobSpec
from storage.contract.types import JobView, TrackView
from storage.media import lrc

# Why lyrics come without times: the song kept no latents (made by the sketch, or before they were kept)...
MADE_BEFORE = "Song #{song} was made before songs kept what timing needs, so its lines can't be timed."
# ...or the model found no sung line in them (only section tags such as [verse]).
NOT_SUNG = "The model found no sung line to time in song #{song}."


def has_lyrics(track: TrackView) -> bool:
    """Whether the song has words (an instrumental's lyrics are empty)."""
    return bool(track.lyrics.strip())


def instrumental_text(song_id: int) -> str:
    """The one sentence for an instrumental song."""
    return f"Song #{song_id} is instrumental: it has no lyrics to time."


def timed_text(track: TrackView) -> str:
    """The title, then each sung line after its start, `[mm:ss.xx]`."""
    assert track.timing is not None
    return "\n".join([f"Lyrics of #{track.job_id} — {track.title}", "", *lrc.timed_lines(track.timing)])


def untimed_text(track: TrackView, why: str = MADE_BEFORE) -> str:
    """The lyrics as written, and the sentence `why` they are not timed (`{song}`: the song id)."""
    return f"Lyrics of #{track.job_id} — {track.title}\n\n{track.lyrics}\n\n{why.format(song=track.job_id)}"


def timing_queued_text(song_id: int) -> str:
    """The acknowledgement of a `timing` job: the lines come in a moment."""
    return f"Timing the lyrics of #{song_id}; the timed lines and an .lrc file come here in a moment."


def lrc_filename(track: TrackView) -> str:
    """The LRC file's name: the song's MP3 name with `.lrc`."""
    return f"song-{track.job_id}.lrc"


def lrc_file(track: TrackView) -> str:
    """The song's LRC file (title and length headers, then the timed lines)."""
    assert track.timing is not None
    return lrc.lrc_text(track.timing, track.title, track.duration_s)


def can_be_timed(track: TrackView) -> bool:
    """Whether a timing job can time this song: it has lyrics and its latents were kept."""
    return has_lyrics(track) and bool(track.latents_blob)


def timing_spec(parent: JobView, track: TrackView) -> JobSpec:
    """The spec of a `timing` job: the song as it was made (its plan, caption, lyrics, metadata and length)."""
    return JobSpec.build(
        caption=track.caption,
        lyrics=track.lyrics,
        instrumental=parent.spec.instrumental,
        duration_s=round(track.duration_s, 3),
        **JobSpec.meta_fields(track.meta),
        plan=track.plan,
        style=parent.spec.style,
        style_scale=parent.spec.style_scale,
    )
