"""/lyrics and 📝 on Telegram, end to end: real python-telegram-bot against the fake Bot API, engine in a thread.

The timed lines come as a message (`[mm:ss.xx]` before each), the LRC as a document; an instrumental
gets one sentence; a song stored before timing was kept is timed on request (a `timing` job whose
answer the delivery loop posts), or gets a sentence when its latents were not kept.
"""

from __future__ import annotations

import re

from storage.contract.types import SUCCEEDED
from tests.bot.telegram.telegram_stack import RunningBot, song_id_and_seed
from tests.fakes.telegram_api import FakeTelegramAPI, FakeUser
from tests.helpers import make_old_song

ANN = FakeUser(101, "Ann")
SONG_TIMEOUT_S = 30.0
STAMPED = re.compile(r"^\[\d\d:\d\d\.\d\d\](.+)$", re.M)
LYRICS = "[verse]\nhello morning\nwake up slow"


async def make_song(api: FakeTelegramAPI, text: str) -> tuple[int, dict]:
    mark = api.mark()
    api.user_message(ANN, text)
    audio = await api.wait_for("sendAudio", chat_id=ANN.id, after=mark, timeout=SONG_TIMEOUT_S)
    return song_id_and_seed(audio)[0], audio.result


async def test_lyrics_come_timed_with_an_lrc_document_and_an_instrumental_says_so(
    api: FakeTelegramAPI, running: RunningBot
) -> None:
    song_id, posted = await make_song(api, f"/song calm piano duration=12 bpm=120\n{LYRICS}")

    mark = api.mark()
    request = api.user_message(ANN, f"/lyrics {song_id}")
    document = await api.wait_for("sendDocument", chat_id=ANN.id, after=mark)
    [text] = api.calls_of("sendMessage", chat_id=ANN.id, after=mark)
    assert STAMPED.findall(text.params["text"]) == ["hello morning", "wake up slow"]
    assert text.params["reply_parameters"]["message_id"] == request["message_id"]
    lrc = document.files["document"]
    assert lrc.filename == f"song-{song_id}.lrc"
    lines = lrc.data.decode().splitlines()
    assert lines[1] == "[length:00:12]" and lines[2] == "[00:02.00]hello morning"

    # 📝 under the result: the same answer, and the press is answered.
    mark = api.mark()
    query = api.press(ANN, posted, f"ly:{song_id}")
    pressed = await api.wait_for("sendDocument", chat_id=ANN.id, after=mark)
    assert pressed.files["document"].data == lrc.data and query in api.answered

    drums, _ = await make_song(api, "/song drums duration=10 instrumental=true")
    mark = api.mark()
    api.user_message(ANN, f"/lyrics {drums}")
    said = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)
    assert said.params["text"] == f"📝 Song #{drums} is instrumental: it has no lyrics to time."
    assert api.calls_of("sendDocument", chat_id=ANN.id)[-1] is pressed


async def test_an_old_song_is_timed_on_request_or_gets_a_sentence(api: FakeTelegramAPI, running: RunningBot) -> None:
    service = running.service
    song_id, _ = await make_song(api, f"/song calm piano duration=12 bpm=120\n{LYRICS}")
    timed = service.library.get(song_id).timing
    make_old_song(service.queue.engine, service.blobs, song_id)

    mark = api.mark()
    request = api.user_message(ANN, f"/lyrics {song_id}")
    acknowledged = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)
    assert acknowledged.params["text"].startswith(f"📝 Timing the lyrics of #{song_id}")
    document = await api.wait_for("sendDocument", chat_id=ANN.id, after=mark, timeout=SONG_TIMEOUT_S)
    assert document.params["reply_parameters"]["message_id"] == request["message_id"]
    assert b"[00:02.00]hello morning" in document.files["document"].data
    answer = api.calls_of("sendMessage", chat_id=ANN.id, after=mark)[-1]
    assert STAMPED.findall(answer.params["text"]) == ["hello morning", "wake up slow"]
    assert service.library.get(song_id).timing == timed
    timing_job = service.queue.get(song_id + 1)
    assert timing_job is not None and (timing_job.kind, timing_job.status) == ("timing", SUCCEEDED)

    make_old_song(service.queue.engine, service.blobs, song_id, latents=False)
    mark = api.mark()
    api.user_message(ANN, f"/lyrics {song_id}")
    said = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)
    assert (
        "hello morning" in said.params["text"] and "was made before songs kept what timing needs" in said.params["text"]
    )
