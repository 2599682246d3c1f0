"""Takes, repaint, extend and songs like a clip on Telegram: real python-telegram-bot against the fake Bot API
(sketch engine); every bad input is one sentence."""

from __future__ import annotations

import io

import numpy as np
import soundfile as sf

from tests.bot.telegram.telegram_stack import RunningBot, buttons, song_id_and_seed
from tests.bot.telegram.test_telegram_cover import ogg
from tests.fakes.telegram_api import ApiCall, FakeTelegramAPI, FakeUser, Json

ANN, BOB = FakeUser(301, "Ann"), FakeUser(302, "Bob")
TIMEOUT_S = 30.0
RATE = 48_000


def samples(call: ApiCall) -> np.ndarray:
    data, rate = sf.read(io.BytesIO(call.files["audio"].data), dtype="float64", always_2d=True)
    assert rate == RATE
    return data


def snr_db(reference: np.ndarray, other: np.ndarray) -> float:
    noise = float(((reference - other) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(float((reference**2).sum()) / noise)


async def song_of(api: FakeTelegramAPI, user: FakeUser, text: str, reply_to: Json | None = None) -> ApiCall:
    mark = api.mark()
    api.user_message(user, text, reply_to=reply_to)
    return await api.wait_for("sendAudio", chat_id=user.id, after=mark, timeout=TIMEOUT_S)


async def answer_to(api: FakeTelegramAPI, user: FakeUser, text: str, reply_to: Json | None = None) -> str:
    """Send `text`; the bot's one answer: a refusal, or the acknowledgement's final text when it was refused."""
    mark = api.mark()
    api.user_message(user, text, reply_to=reply_to)
    reply = await api.wait_for("sendMessage", chat_id=user.id, after=mark)
    key = (user.id, reply.result["message_id"])
    if reply.params["text"].startswith(("✏️ Repainting", "➕ Extending")):
        await api.wait_until(lambda: len(api.edits.get(key, [])) > 1)
    return api.edits.get(key, [reply.params["text"]])[-1]


async def test_takes_repaint_as_a_reply_buttons_and_a_like_clip(api: FakeTelegramAPI, running: RunningBot) -> None:
    mark = api.mark()
    api.user_message(ANN, "/song calm piano at dawn duration=20 seed=40 takes=2")
    await api.wait_until(lambda: len(api.calls_of("sendAudio", chat_id=ANN.id)) == 2, timeout=TIMEOUT_S)
    first, second = api.calls_of("sendAudio", chat_id=ANN.id)
    (song_id, seed), (other_id, other_seed) = song_id_and_seed(first), song_id_and_seed(second)
    assert {seed, other_seed} == {40, 41} and other_id != song_id
    assert not np.array_equal(samples(first), samples(second))
    assert buttons(first) == [f"rr:{song_id}", f"ly:{song_id}", f"rp:{song_id}", f"ex:{song_id}"]
    assert len(api.calls_of("sendMessage", chat_id=ANN.id, after=mark)) == 2  # a status message per take

    # /repaint as a reply to the result: the rest of the song keeps its samples.
    repaint = await song_of(api, ANN, "/repaint 8-12 a guitar solo", reply_to=first.result)
    repaint_id = song_id_and_seed(repaint)[0]
    job = running.service.queue.get(repaint_id)
    assert job is not None and job.kind == "repaint" and job.parent_id == song_id
    assert repaint.params["title"] == first.params["title"]  # the same song, with a new caption for the part
    base, new = samples(first), samples(repaint)
    assert base.shape == new.shape
    assert snr_db(base[: int(7.5 * RATE)], new[: int(7.5 * RATE)]) >= 30
    # The sketch's new take of the part shares the song's tempo, key and kick, so it differs by about 1-16 dB.
    assert snr_db(base[int(8.5 * RATE) : int(11.5 * RATE)], new[int(8.5 * RATE) : int(11.5 * RATE)]) < 25

    # The replied-to result is found by its stored message id, not by reading its caption...
    stored = ("telegram", str(ANN.id), str(second.result["message_id"]))
    await api.wait_until(lambda: running.service.outbox.song_of_result(*stored) == other_id)
    bare = {**second.result, "caption": "a caption that names no song"}
    by_id = await song_of(api, ANN, "/repaint 1-2", reply_to=bare)
    by_id_job = running.service.queue.get(song_id_and_seed(by_id)[0])
    assert by_id_job is not None and by_id_job.kind == "repaint" and by_id_job.parent_id == other_id
    # ...and a result whose id is not stored yet (a reply faster than the bookkeeping) by our caption's song line.
    unstored = {**second.result, "message_id": 987_654}
    by_caption = await song_of(api, ANN, "/repaint 1-2", reply_to=unstored)
    by_caption_job = running.service.queue.get(song_id_and_seed(by_caption)[0])
    assert by_caption_job is not None and by_caption_job.parent_id == other_id

    # ✏️ asks which part; the answer (a reply to the question) repaints it.
    mark = api.mark()
    api.press(ANN, first.result, f"rp:{song_id}")
    question = await api.wait_for("sendMessage", chat_id=ANN.id, after=mark)
    assert question.params["text"].startswith(f"✏️ Repaint #{song_id}:") and question.params["reply_markup"]
    answered = await song_of(api, ANN, "0:02-0:04", reply_to=question.result)
    answered_job = running.service.queue.get(song_id_and_seed(answered)[0])
    assert answered_job is not None and answered_job.spec.edit is not None
    assert (answered_job.spec.edit.start_s, answered_job.spec.edit.end_s) == (2.0, 4.0)

    # ➕ extends by 30 seconds; what was there stays.
    mark = api.mark()
    api.press(ANN, first.result, f"ex:{song_id}")
    extended = await api.wait_for("sendAudio", chat_id=ANN.id, after=mark, timeout=TIMEOUT_S)
    longer = samples(extended)
    assert abs(longer.shape[0] - base.shape[0] - 30 * RATE) < 0.05 * RATE
    assert snr_db(base[: int(19.5 * RATE)], longer[: int(19.5 * RATE)]) >= 30

    # /song as a reply to a recording: a song like that clip.
    clip = api.user_message(ANN, media=api.audio(ogg(), mime="audio/ogg", file_name="hum.ogg", duration=12))
    liked = await song_of(api, ANN, "/song a jazz ballad duration=10", reply_to=clip)
    liked_job = running.service.queue.get(song_id_and_seed(liked)[0])
    assert liked_job is not None and liked_job.spec.like and liked_job.source_blob


async def test_bad_edits_get_one_sentence_each(api: FakeTelegramAPI, running: RunningBot) -> None:
    result = await song_of(api, ANN, "/song rain on a tin roof duration=20 seed=3")
    song_id = song_id_and_seed(result)[0]
    answers = {
        "outside": await answer_to(api, ANN, "/repaint 15-25", reply_to=result.result),
        "backwards": await answer_to(api, ANN, f"/repaint {song_id} 0:12-0:08"),
        "whole": await answer_to(api, ANN, f"/repaint {song_id} 0-20"),
        "missing": await answer_to(api, ANN, "/repaint 999 1-2"),
        "not yours": await answer_to(api, BOB, f"/repaint {song_id} 1-2"),
        "too long": await answer_to(api, ANN, f"/extend {song_id} 600"),
        "no song": await answer_to(api, ANN, "/repaint 1-2"),
        "takes": await answer_to(api, ANN, "/song rain takes=5"),
        "odd digits": await answer_to(api, ANN, f"/extend {song_id} ３０"),
    }
    assert "must lie within 0:00-0:20" in answers["outside"]
    assert "must come after its start" in answers["backwards"]
    assert "whole of song" in answers["whole"]
    assert "no finished song #999" in answers["missing"]
    assert "is not yours" in answers["not yours"]
    assert "can grow at most 220 seconds" in answers["too long"]
    assert answers["no song"].startswith("Use /repaint")
    assert "takes must be" in answers["takes"]
    assert "whole number written with the digits 0-9" in answers["odd digits"]
    for text in answers.values():
        assert (text.count(". ") == 0 and text.rstrip(".").count(".") == 0) or text.startswith("Use "), text
    assert sum(running.service.queue.counts().values()) == 1  # nothing was queued by a bad input
