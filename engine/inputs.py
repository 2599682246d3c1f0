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
    """The job's request for the model, with its decoded upload and an edit's base song."""
    source = None
    if job.source_blob:
        try:
            data = blobs.read_bytes(job.source_blob)
        except FileNotFoundError as error:  # swept after UPLOAD_RETENTION_DAYS, or removed by hand
            raise BadAudio(SOURCE_GONE) from error
        source = decoding.decode(data, max_source_s)
    return request_for(job, source, **base_song(job, blobs, library))


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
