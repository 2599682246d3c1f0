"""Answers that are not songs: /lyrics through the service, and the delivery of a job that makes no track."""

from dataclasses import replace

import pytest

from bot.core import answers, lyrics
from bot.core.delivery import ANSWERERS, DeliveryLoop, answer_of
from bot.core.parser import SongRequest
from bot.core.service import SongService
from storage.contract.results import LyricTiming, ModelInfo, TimedLine, TrackMeta
from storage.contract.types import TRACKLESS_KINDS, DeliveryTarget, NewTrack, UserRef
from tests.helpers import make_settings

USER = UserRef("fake", "1", "Ann")
TARGET = DeliveryTarget("fake", "chat")
LYRICS = "[verse]\nthe morning train\nis late"
TIMING = LyricTiming(
    lines=(
        TimedLine(start_s=2.0, end_s=4.0, text="the morning train"),
        TimedLine(start_s=65.5, end_s=68, text="is late"),
    )
)


class Recorder:
    platform = "fake"

    def __init__(self):
        self.calls = []

    async def show_status(self, delivery, text):
        self.calls.append(("status", delivery.job_id, text))

    async def send_result(self, delivery, result):
        self.calls.append(("result", delivery.job_id, result.caption))

    async def send_error(self, delivery, text):
        self.calls.append(("error", delivery.job_id, text))

    async def send_notice(self, delivery, text):
        self.calls.append(("notice", delivery.job_id, text))

    async def send_answer(self, delivery, answer):
        self.calls.append(("answer", delivery.job_id, answer))


@pytest.fixture
def service(tmp_path):
    return SongService.from_settings(make_settings(tmp_path))


async def finished_song(service, lyrics_text=LYRICS, timing=None, latents="latents/1.npy"):
    job = await service.submit_song(USER, SongRequest("trains", lyrics=lyrics_text, duration_s=70), TARGET)
    [claimed] = service.queue.claim("engine", 1, service.clock(), 30)
    track = NewTrack(
        blob_path="tracks/1.mp3",
        duration_s=70.0,
        seed=claimed.seed,
        sha256="0" * 64,
        title="Trains",
        caption="trains",
        lyrics=lyrics_text,
        meta=TrackMeta(bpm=96, key="C major", duration_s=70.0),
        model=ModelInfo(backend="acestep"),
        latents_blob=latents,
        timing=timing,
    )
    service.queue.complete(claimed, "engine", track, service.clock())
    return job.id


async def test_a_timed_song_answers_with_stamped_lines_and_its_lrc(service):
    song_id = await finished_song(service, timing=TIMING)
    answer = await service.lyrics_for(USER, song_id, TARGET)
    assert answer.text.splitlines() == [
        f"Lyrics of #{song_id} — Trains",
        "",
        "[00:02.00]the morning train",
        "[01:05.50]is late",
    ]
    assert answer.attachment is not None and answer.attachment.filename == f"song-{song_id}.lrc"
    assert answer.attachment.data.decode().splitlines()[:3] == [
        "[ti:Trains]",
        "[length:01:10]",
        "[00:02.00]the morning train",
    ]
    assert answer.queued is None and "[00:02.00]the morning train" in await service.lyrics(song_id)


async def test_an_instrumental_says_so_in_one_sentence(service):
    song_id = await finished_song(service, lyrics_text="")
    answer = await service.lyrics_for(USER, song_id, TARGET)
    assert answer.text == f"Song #{song_id} is instrumental: it has no lyrics to time." and answer.attachment is None


async def test_a_song_without_latents_gets_its_lyrics_and_a_sentence_and_no_job(service):
    song_id = await finished_song(service, latents=None)
    answer = await service.lyrics_for(USER, song_id, TARGET)
    assert answer.text.endswith(
        f"Song #{song_id} was made before songs kept what timing needs, so its lines can't be timed."
    )
    assert "the morning train" in answer.text and answer.attachment is None and answer.queued is None


async def test_an_untimed_song_is_timed_on_request_by_a_cheap_fair_queued_job(service):
    song_id = await finished_song(service)
    answer = await service.lyrics_for(USER, song_id, TARGET)
    job = answer.queued
    assert job is not None and answer.text == lyrics.timing_queued_text(song_id)
    assert (job.kind, job.parent_id, job.cost) == ("timing", song_id, 2.0)
    assert (job.spec.lyrics, job.spec.duration_s, job.spec.bpm) == (LYRICS, 70.0, 96)
    assert service.outbox.for_job(job.id) is not None


async def test_asking_again_while_the_timing_waits_queues_nothing_more(service):
    song_id = await finished_song(service)
    first = await service.lyrics_for(USER, song_id, TARGET)
    again = await service.lyrics_for(USER, song_id, TARGET)
    assert first.queued is not None and again.queued is None and again.text == first.text
    timing_jobs = [job for job in service.queue.pending_of(first.queued.user_id) if job.kind == "timing"]
    assert [job.id for job in timing_jobs] == [first.queued.id]


async def test_the_delivery_loop_answers_a_timing_job_through_its_renderer_without_a_status(service):
    song_id = await finished_song(service)
    job = (await service.lyrics_for(USER, song_id, TARGET)).queued
    recorder = Recorder()
    loop = DeliveryLoop(service)
    loop.register(recorder)
    await loop.run_once()
    assert [call for call in recorder.calls if call[1] == job.id] == []  # no status for a job that makes no track
    [claimed] = service.queue.claim("engine", 1, service.clock(), 30)
    service.queue.complete_timing(claimed, "engine", TIMING, service.clock())
    await loop.run_once()
    await loop.run_once()
    [(kind, job_id, answer)] = [call for call in recorder.calls if call[1] == job.id]
    assert (kind, job_id) == ("answer", job.id) and "[01:05.50]is late" in answer.text
    assert answer.attachment is not None and service.outbox.for_job(job.id).state == "done"


async def test_a_failed_timing_job_is_its_sentence_alone(service):
    song_id = await finished_song(service)
    job = (await service.lyrics_for(USER, song_id, TARGET)).queued
    [claimed] = service.queue.claim("engine", 1, service.clock(), 30)
    service.queue.fail(claimed, "engine", "Song #1 was made before songs kept what timing needs.", service.clock())
    recorder = Recorder()
    loop = DeliveryLoop(service)
    loop.register(recorder)
    await loop.run_once()
    mine = [call for call in recorder.calls if call[1] == job.id]
    assert mine == [("error", job.id, "⚠️ Song #1 was made before songs kept what timing needs.")]


async def test_every_trackless_kind_has_a_renderer_and_an_unknown_one_is_refused(service):
    assert set(ANSWERERS) == set(TRACKLESS_KINDS)
    song_id = await finished_song(service, timing=TIMING)
    job = (await service.lyrics_for(USER, song_id, TARGET)).queued
    assert job is None
    timing_job = replace(service.queue.get(song_id), kind="timing", result={"song_id": song_id, "lines": 2})
    assert answer_of(service, timing_job) == answers.lyrics_answer(service.library.get(song_id))
    with pytest.raises(RuntimeError):
        answer_of(service, replace(timing_job, kind="mystery"))
