"""House styles in the bot: /styles, style= on the commands, refusals at submit, re-rolls and edits keep the style."""

import pytest

from bot.core.parser import (
    CoverRequest,
    ExtendRequest,
    ParsedCommand,
    RepaintRequest,
    SongRequest,
    parse_cover,
    parse_extend,
    parse_repaint,
    parse_song,
)
from bot.core.render import styles_text
from bot.core.service import Clip, SongService
from storage.contract.errors import UserError
from storage.contract.results import ModelInfo, StyleRef, TrackMeta
from storage.contract.types import NewTrack
from storage.styles import STYLES_NEED_ACESTEP
from tests.bot.core.test_service import ALICE, TARGET, wav
from tests.helpers import make_settings

SHA = "ab" * 32


def acestep_service(tmp_path, *styles: str, backend: str = "acestep") -> SongService:
    settings = make_settings(tmp_path, max_source_mb=1, max_duration_s=120, model_dir=tmp_path / "models")
    for name in styles:
        folder = tmp_path / "models" / "loras" / name
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text('{"r": 4, "lora_alpha": 8}')
    return SongService.from_settings(settings, backend=backend)


def finish_styled(service, job, style: StyleRef | None) -> None:
    [claimed] = service.queue.claim("engine", 1, service.clock(), 30)
    track = NewTrack(
        blob_path=f"tracks/{job.id}.mp3",
        duration_s=job.spec.duration_s,
        seed=job.seed,
        sha256="0" * 64,
        title="Rain",
        caption=job.spec.caption,
        lyrics=job.spec.lyrics,
        meta=TrackMeta(bpm=90),
        model=ModelInfo(backend="acestep"),
        style=style,
    )
    service.queue.complete(claimed, "engine", track, service.clock())


def test_parser_reads_style_and_scale_on_every_making_command():
    song = parse_song(ParsedCommand("song", "rain at night style=demo style_scale=0.5", ""))
    assert (song.description, song.lora, song.lora_scale) == ("rain at night", "demo", 0.5)
    cover = parse_cover(ParsedCommand("cover", "jazz trio style=demo", ""))
    assert (cover.style, cover.lora, cover.lora_scale) == ("jazz trio", "demo", None)
    repaint = parse_repaint(ParsedCommand("repaint", "12 0:10-0:20 a guitar solo style=demo", ""))
    assert (repaint.caption, repaint.lora) == ("a guitar solo", "demo")
    extend = parse_extend(ParsedCommand("extend", "12 30 style=demo style_scale=1", ""))
    assert (extend.caption, extend.lora, extend.lora_scale) == ("", "demo", 1.0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ("rain style_scale=0.5", "style_scale= goes with a style"),
        ("rain style=demo style_scale=2", "style_scale must be between 0 and 1"),
        ("rain style=demo style_scale=lots", "style_scale must be a number"),
    ],
)
def test_parser_refuses_a_bad_scale_in_one_sentence(args, message):
    with pytest.raises(UserError, match=message):
        parse_song(ParsedCommand("song", args, ""))


def test_styles_text_lists_or_says_why_not():
    assert "• demo\n• lofi" in styles_text(["demo", "lofi"], "acestep")
    assert "No styles are installed" in styles_text([], "acestep")
    assert "need the ACE-Step model" in styles_text(["demo"], "sketch")


async def test_a_song_and_a_cover_take_an_installed_style(tmp_path):
    service = acestep_service(tmp_path, "demo", "Lofi-2")
    assert service.style_names() == ["demo", "Lofi-2"] and "• Lofi-2" in service.styles_text()
    job = await service.submit_song(ALICE, SongRequest("rain", lora="lofi-2", lora_scale=0.3), TARGET)
    assert (job.spec.style, job.spec.style_scale, job.spec.style_sha256) == ("Lofi-2", 0.3, None)
    [cover] = await service.submit_covers(ALICE, CoverRequest("jazz", lora="demo"), Clip(wav(4)), TARGET)
    assert (cover.spec.caption, cover.spec.style, cover.spec.style_scale) == ("jazz", "demo", None)


async def test_an_unknown_style_is_refused_at_submit_and_nothing_is_queued(tmp_path):
    service = acestep_service(tmp_path, "demo")
    with pytest.raises(UserError) as caught:
        await service.submit_song(ALICE, SongRequest("rain", lora="nope"), TARGET)
    assert caught.value.user_message == "There is no style called 'nope'; the styles here are demo (see /styles)."
    with pytest.raises(UserError, match=r"no style called '\.\./demo'"):
        await service.submit_covers(ALICE, CoverRequest("jazz", lora="../demo"), Clip(wav(4)), TARGET)
    assert service.queue.claim("engine", 8, service.clock(), 30) == []
    bare = acestep_service(tmp_path / "bare")
    with pytest.raises(UserError, match="no styles are installed on this bot"):
        await bare.submit_song(ALICE, SongRequest("rain", lora="demo"), TARGET)


async def test_the_sketch_refuses_any_style(tmp_path):
    service = acestep_service(tmp_path, "demo", backend="sketch")
    with pytest.raises(UserError) as caught:
        await service.submit_song(ALICE, SongRequest("rain", lora="demo"), TARGET)
    assert caught.value.user_message == STYLES_NEED_ACESTEP
    assert "need the ACE-Step model" in service.styles_text()


async def test_a_reroll_carries_the_style_hash_and_an_edit_keeps_or_changes_the_style(tmp_path):
    service = acestep_service(tmp_path, "demo", "other")
    job = await service.submit_song(ALICE, SongRequest("rain", lora="demo", lora_scale=0.5, duration_s=30), TARGET)
    finish_styled(service, job, StyleRef(name="demo", scale=0.5, sha256=SHA))
    again = await service.reroll(ALICE, job.id, job.seed, TARGET)
    assert (again.spec.style, again.spec.style_scale, again.spec.style_sha256) == ("demo", 0.5, SHA)
    kept = await service.repaint(ALICE, RepaintRequest(job.id, 5, 10), TARGET)
    assert (kept.spec.style, kept.spec.style_scale, kept.spec.style_sha256) == ("demo", 0.5, None)
    changed = await service.extend(ALICE, ExtendRequest(job.id, 10, "", lora="other"), TARGET)
    assert (changed.spec.style, changed.spec.style_scale) == ("other", None)
    with pytest.raises(UserError, match="no style called 'gone'"):
        await service.repaint(ALICE, RepaintRequest(job.id, 5, 10, lora="gone"), TARGET)
