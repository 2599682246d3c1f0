"""/lyrics in the console chat, in-process with the real engine loop (sketch backend) in a thread.

A song with lyrics is stored timed: /lyrics prints each line after its `[mm:ss.xx]` and writes
`<song>.lrc` beside the MP3. An instrumental gets one sentence. A song stored before timing was kept
is timed on request by a `timing` job when its latents were kept, and gets a sentence when they were not.
"""

import asyncio
import io
import re
from pathlib import Path

import pytest

from bot.console.repl import ConsoleChat
from bot.core.delivery import DeliveryLoop
from bot.core.service import SongService
from storage.contract.types import SUCCEEDED
from tests.helpers import make_old_song, make_settings, start_engine

LRC_PATH = re.compile(r"^📝 (/.+\.lrc)$", re.M)
STAMPED = re.compile(r"^\[\d\d:\d\d\.\d\d\](.+)$", re.M)


@pytest.fixture
def service(tmp_path):
    settings = make_settings(tmp_path)
    stop = start_engine(settings)
    yield SongService.from_settings(settings)
    stop()


async def chat(service, *lines):
    out = io.StringIO()
    await asyncio.wait_for(ConsoleChat(service, DeliveryLoop(service), out=out).run(feed(*lines), False), 60)
    return out.getvalue()


def feed(*lines):
    queue = [*lines, ""]

    async def read():
        return queue.pop(0)

    return read


async def test_lyrics_are_timed_with_an_lrc_beside_the_mp3_and_an_instrumental_says_so(service):
    await chat(service, "/song trains duration=12 bpm=120\n", "[verse]\n", "the train is late\n", "all aboard\n", "\n")
    await chat(service, "/song drums duration=10 instrumental=true\n")
    out = await chat(service, "/lyrics 1\n", "/lyrics 2\n")
    assert STAMPED.findall(out) == ["the train is late", "all aboard"]
    assert "[00:02.00]the train is late" in out  # one bar of intro at 120 bpm
    [lrc_path] = [Path(path) for path in LRC_PATH.findall(out)]
    mp3 = service.blobs.local_path(service.library.get(1).blob_path).resolve()
    assert lrc_path == mp3.with_suffix(".lrc")
    lrc = lrc_path.read_text().splitlines()
    assert lrc[:2] == ["[ti:Trains]", "[length:00:12]"] and lrc[2] == "[00:02.00]the train is late"
    assert "Song #2 is instrumental: it has no lyrics to time." in out


async def test_an_old_song_is_timed_on_request_and_one_without_latents_gets_a_sentence(service):
    await chat(service, "/song trains duration=12 bpm=120\n", "[verse]\n", "the train is late\n", "\n")
    timed = service.library.get(1).timing
    make_old_song(service.queue.engine, service.blobs, 1)
    out = await chat(service, "/lyrics 1\n")
    assert "Timing the lyrics of #1" in out and "[00:02.00]the train is late" in out
    assert len(LRC_PATH.findall(out)) == 1
    [job] = [job for job in map(service.queue.get, range(1, 4)) if job is not None and job.kind == "timing"]
    assert job.status == SUCCEEDED and job.parent_id == 1 and service.library.get(1).timing == timed

    make_old_song(service.queue.engine, service.blobs, 1, latents=False)
    out = await chat(service, "/lyrics 1\n")
    assert "the train is late" in out and "was made before songs kept what timing needs" in out
    assert STAMPED.findall(out) == [] and LRC_PATH.findall(out) == []
