"""`timing` jobs in the engine loop: a stored song's lyrics timed from its latents, on the sketch backend."""

import pytest

from engine.main import build_worker
from engine.sketch import place_lines, sketch_meta
from storage.contract.results import TimingResult
from storage.contract.spec import JobSpec
from storage.contract.types import FAILED, SUCCEEDED, UserRef
from storage.db import utcnow
from storage.media import audio
from storage.queue.accounts import Accounts
from storage.queue.library import Library
from tests.helpers import make_old_song, make_settings

LYRICS = "[verse]\nthe morning train\nis running late\n[chorus]\nall aboard"


@pytest.fixture
def worker(tmp_path):
    return build_worker(make_settings(tmp_path))


def submit(worker, kind="song", parent_id=None, **spec):
    uid = Accounts(worker.queue.engine).ensure(UserRef("console", "u"), utcnow(), admin=True).id
    return worker.queue.submit(uid, kind, JobSpec(**spec), 9, utcnow(), parent_id=parent_id)


def made_song(worker, lyrics=LYRICS):
    job = submit(worker, caption="folk", lyrics=lyrics, instrumental=not lyrics, duration_s=20.0)
    assert worker.run_once()
    return Library(worker.queue.engine).get(job.id)


def timing_job(worker, track):
    return submit(worker, "timing", track.job_id, caption=track.caption, lyrics=track.lyrics, duration_s=20.0)


def test_a_new_song_with_lyrics_is_stored_timed_and_its_mp3_carries_sylt(worker):
    from mutagen.id3 import ID3

    track = made_song(worker)
    assert track.timing is not None and len(track.timing.lines) == 3
    (sylt,) = ID3(str(worker.blobs.path(track.blob_path))).getall("SYLT")
    assert [text for text, _ in sylt.text] == ["the morning train", "is running late", "all aboard"]
    assert [ms for _, ms in sylt.text] == [round(line.start_s * 1000) for line in track.timing.lines]
    assert audio.read_tags(worker.blobs.path(track.blob_path))["lyrics"] == LYRICS


def test_an_old_song_is_timed_on_request_without_a_new_track(worker):
    song = made_song(worker)
    make_old_song(worker.queue.engine, worker.blobs, song.job_id)
    library = Library(worker.queue.engine)
    assert library.get(song.job_id).timing is None
    job = timing_job(worker, song)
    assert job.cost == 2.0  # one pass of the model, not a song
    assert worker.run_once()
    done = worker.queue.get(job.id)
    assert done.status == SUCCEEDED and library.get(job.id) is None
    assert TimingResult.from_stored(done.result) == TimingResult(song_id=song.job_id, lines=3)
    bpm, _ = sketch_meta(JobSpec(caption="folk", duration_s=20.0))
    assert library.get(song.job_id).timing == place_lines(LYRICS, 20.0, bpm) == song.timing


def test_a_song_without_kept_latents_gets_a_sentence(worker):
    song = made_song(worker)
    make_old_song(worker.queue.engine, worker.blobs, song.job_id, latents=False)
    job = timing_job(worker, song)
    worker.run_once()
    failed = worker.queue.get(job.id)
    assert failed.status == FAILED and failed.error.startswith(f"Song #{song.job_id} was made before")
    assert Library(worker.queue.engine).get(song.job_id).timing is None


def test_a_timing_job_and_songs_share_a_batch(worker):
    song = made_song(worker)
    make_old_song(worker.queue.engine, worker.blobs, song.job_id)
    first = submit(worker, caption="jazz", duration_s=10.0)
    timed = timing_job(worker, song)
    last = submit(worker, caption="rock", lyrics="la la", duration_s=10.0)
    assert worker.run_once()
    assert [worker.queue.get(job.id).status for job in (first, timed, last)] == [SUCCEEDED] * 3
    library = Library(worker.queue.engine)
    assert library.get(first.id).caption == "jazz"
    assert library.get(last.id).timing is not None and library.get(song.job_id).timing is not None
