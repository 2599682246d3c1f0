"""The planner's context check, wired by the composition root, refuses what the LM cannot hold."""

import logging

import pytest

from bot.core.parser import SongRequest
from bot.core.service import SongService
from songbot.checks import song_checks
from storage.contract.errors import UserError
from storage.contract.types import DeliveryTarget, UserRef
from tests.helpers import make_settings

USER = UserRef("console", "me")
TARGET = DeliveryTarget("console", "c")


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    from engine.acestep.lm.tiny import make_tiny_lm

    root = tmp_path_factory.mktemp("lm")
    make_tiny_lm(root)
    return root


async def test_too_long_for_the_planner_is_refused_before_queueing(tmp_path, lm_dir):
    settings = make_settings(
        tmp_path,
        model_dir=lm_dir,
        engine_backend="auto",
        lm_model="acestep-5Hz-lm-0.6B",
        max_duration_s=600,
        max_lyrics_chars=20_000,
    )
    checks = song_checks(settings)
    assert len(checks) == 1
    service = SongService.from_settings(settings, song_checks=checks)
    job = await service.submit_song(USER, SongRequest("a sad folk song about trains", duration_s=60), TARGET)
    assert job.status == "queued"
    lyrics = "\n".join(f"line {i} of a song that never ends, word{i} word{i * 7}" for i in range(150))
    with pytest.raises(UserError, match="planner") as caught:
        await service.submit_song(USER, SongRequest("epic", lyrics=lyrics, duration_s=600), TARGET)
    assert "\n" not in caught.value.user_message
    assert service.queue.counts() == {"queued": 1}


def test_no_check_without_an_lm_or_on_the_sketch_backend(tmp_path, lm_dir):
    assert song_checks(make_settings(tmp_path, model_dir=tmp_path / "empty", engine_backend="auto")) == []
    assert song_checks(make_settings(tmp_path, model_dir=lm_dir, engine_backend="sketch")) == []


def test_the_log_names_the_lm_that_is_there_not_the_one_asked_for(tmp_path, lm_dir, caplog):
    caplog.set_level(logging.INFO, logger="songbot")
    settings = make_settings(tmp_path, model_dir=lm_dir, engine_backend="auto", lm_model="acestep-5Hz-lm-1.7B")
    assert len(song_checks(settings)) == 1
    checked = next(r for r in caplog.records if "checked against" in r.getMessage())
    assert checked.lm == "acestep-5Hz-lm-0.6B"
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
    assert warning.lm_model == "acestep-5Hz-lm-1.7B" and warning.lm == "acestep-5Hz-lm-0.6B"
