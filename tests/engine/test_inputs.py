"""A claimed job's inputs from storage: its upload and an edit's base song, or the sentence it fails with."""

import numpy as np
import pytest
from sqlalchemy import update

from engine.failures import SOURCE_GONE
from engine.inputs import base_song, request_of
from engine.main import build_worker
from storage.contract.errors import BadAudio
from storage.contract.spec import Edit
from storage.models import tracks_table
from tests.engine.test_worker import submit
from tests.helpers import make_settings


@pytest.fixture
def worker(tmp_path):
    return build_worker(make_settings(tmp_path))


def read(worker, job):
    return request_of(job, worker.blobs, worker.library, worker.config.max_source_duration_s)


def test_a_song_needs_nothing_stored(worker):
    request = read(worker, submit(worker))
    assert request.source_audio is None and request.base_audio is None and request.base_latents is None


def test_a_vanished_upload_is_the_sentence_to_send_it_again(worker):
    blob = worker.blobs.put_upload(b"was audio once", ".mp3")
    worker.blobs.delete(blob)
    with pytest.raises(BadAudio) as raised:
        read(worker, submit(worker, kind="cover", source_blob=blob, strength=0.5))
    assert raised.value.user_message == SOURCE_GONE


def test_an_edit_of_a_song_that_is_gone_says_so(worker):
    job = submit(worker, kind="repaint", edit=Edit(task="repaint", song_id=99, start_s=2, end_s=4))
    with pytest.raises(BadAudio, match="Song #99 is gone"):
        base_song(job, worker.blobs, worker.library)


def keep_latents(worker, job_id, latents):
    with worker.queue.engine.begin() as conn:
        conn.execute(update(tracks_table).where(tracks_table.c.job_id == job_id).values(latents_blob=latents))


def test_kept_latents_come_with_the_base_song(worker):
    done = submit(worker)
    worker.run_once()
    keep_latents(worker, done.id, worker.blobs.put_array("latents/0000/kept", np.ones((5, 64), np.float32)))
    job = submit(worker, kind="repaint", edit=Edit(task="repaint", song_id=done.id, start_s=2, end_s=4))
    base = base_song(job, worker.blobs, worker.library)
    assert np.array_equal(base["base_latents"], np.ones((5, 64), np.float32))


def test_unreadable_latents_fall_back_to_the_songs_audio(worker):
    done = submit(worker)
    worker.run_once()
    latents = worker.blobs.put_array("latents/0000/broken", np.zeros((5, 64), np.float32))
    worker.blobs.path(latents).write_bytes(b"not an array")
    keep_latents(worker, done.id, latents)
    job = submit(worker, kind="repaint", edit=Edit(task="repaint", song_id=done.id, start_s=2, end_s=4))
    base = base_song(job, worker.blobs, worker.library)
    assert base["base_latents"] is None and base["base_audio"].shape[1] == 2


def test_an_edit_of_a_song_whose_file_is_gone_says_so(worker):
    done = submit(worker)
    worker.run_once()
    worker.blobs.delete(worker.library.get(done.id).blob_path)
    job = submit(worker, kind="repaint", edit=Edit(task="repaint", song_id=done.id, start_s=2, end_s=4))
    with pytest.raises(BadAudio, match=f"Song #{done.id} is gone"):
        base_song(job, worker.blobs, worker.library)


def test_missing_latents_fall_back_to_the_songs_audio(worker):
    done = submit(worker)
    worker.run_once()
    keep_latents(worker, done.id, "latents/0000/never-written.npy")
    job = submit(worker, kind="repaint", edit=Edit(task="repaint", song_id=done.id, start_s=2, end_s=4))
    base = base_song(job, worker.blobs, worker.library)
    assert base["base_latents"] is None and base["base_audio"].shape[1] == 2
