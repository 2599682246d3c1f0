"""What a claimed job needs from storage before the model runs: its upload, and an edit's base song.

Read in the worker's preparing stage; anything missing or unreadable raises `BadAudio` with the
sentence its job fails with (the worker's guard fails that job alone).
"""

from __future__ import annotations

import logging

import numpy as np

from engine.failures import SOURCE_GONE
from engine.protocol import TrackRequest, request_for
from storage.blobs.store import BlobStore
from storage.contract.errors import BadAudio
from storage.contract.types import JobView
from storage.contract.values import MAX_DURATION_S
from storage.media import decoding
from storage.queue.library import Library

log = logging.getLogger("songbot.engine")


def request_of(job: JobView, blobs: BlobStore, library: Library, max_source_s: float) -> TrackRequest:
    """The job's request for the model, with its decoded upload and an edit's base song (a timed song's latents)."""
    if job.kind == "timing":
        return timing_request(job, blobs, library)
    source = None
    if job.source_blob:
        try:
            data = blobs.read_bytes(job.source_blob)
        except FileNotFoundError as error:  # swept after UPLOAD_RETENTION_DAYS, or removed by hand
            raise BadAudio(SOURCE_GONE) from error
        source = decoding.decode(data, max_source_s)
    return request_for(job, source, **base_song(job, blobs, library))


def timing_request(job: JobView, blobs: BlobStore, library: Library) -> TrackRequest:
    """A `timing` job's request: the song's spec (on the job) and its stored latents in `base_latents`.

    Raises:
        BadAudio: the song is gone, or its latents were never kept or can't be read (one sentence).
    """
    song_id = job.parent_id
    track = library.get(song_id) if song_id is not None else None
    if track is None:
        raise BadAudio(f"Song #{song_id} is gone, so its lyrics can't be timed.")
    unkept = BadAudio(no_latents_text(track.job_id))
    if not track.latents_blob:
        raise unkept
    try:
        latents = blobs.get_array(track.latents_blob)
    except (OSError, ValueError) as error:
        raise unkept from error
    return request_for(job, base_latents=latents)


def no_latents_text(song_id: int) -> str:
    """The one sentence for a song whose lyrics can't be timed: it was made before its latents were kept."""
    return f"Song #{song_id} was made before songs kept what timing needs, so its lines can't be timed."


def base_song(job: JobView, blobs: BlobStore, library: Library) -> dict[str, np.ndarray | None]:
    """An edit's base song: its decoded MP3 and, when kept, its latents; {} for other jobs."""
    edit = job.spec.edit
    if edit is None:
        return {}
    gone = BadAudio(f"Song #{edit.song_id} is gone, so this change of it can't be made.")
    track = library.get(edit.song_id)
    if track is None:
        raise gone
    try:
        data = blobs.read_bytes(track.blob_path)  # one read, no existence check first (a request on S3)
    except FileNotFoundError as error:
        raise gone from error
    latents = None
    if track.latents_blob:
        try:
            latents = blobs.get_array(track.latents_blob)
        except (OSError, ValueError):  # missing or unreadable: the backend encodes the song's audio instead
            log.warning("no readable latents; using the song's audio", extra={"job": job.id})
    return {"base_audio": decoding.decode(data, MAX_DURATION_S + 1), "base_latents": latents}
