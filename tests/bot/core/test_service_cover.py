"""/cover with new lyrics and a language: the service puts them in the spec, held to /song's rules."""

import pytest

from bot.core.parser import CoverRequest, parse_command, parse_cover
from bot.core.service import SongService
from storage.contract.errors import UserError
from tests.bot.core.test_service_uploads import ANN, TARGET, flac
from tests.helpers import make_settings


@pytest.fixture
def service(tmp_path):
    return SongService.from_settings(make_settings(tmp_path, max_lyrics_chars=40))


async def test_new_lyrics_and_their_language_reach_the_spec(service):
    request = parse_cover(parse_command("/cover bossa nova language=es\n[Verse]\nla luna\u202e sobre el mar\n"))
    job = await service.submit_cover(ANN, request, flac(6.0, 44_100), "take.flac", TARGET)
    spec = job.spec
    assert (spec.caption, spec.lyrics, spec.language, spec.instrumental) == (
        "bossa nova",
        "[Verse]\nla luna sobre el mar",  # format characters removed, lines kept
        "es",
        False,
    )


async def test_a_cover_without_lyrics_has_an_empty_spec_as_before(service):
    job = await service.submit_cover(ANN, CoverRequest("jazz", 0.5), flac(6.0, 44_100), "take.flac", TARGET)
    assert (job.spec.lyrics, job.spec.language, job.spec.instrumental) == ("", None, False)


async def test_too_many_words_are_refused_before_the_upload_is_kept(service):
    request = CoverRequest("jazz", lyrics="la " * 20)
    with pytest.raises(UserError, match="Keep the lyrics under 40 characters"):
        await service.submit_cover(ANN, request, flac(6.0, 44_100), "take.flac", TARGET)
    assert not list((service.settings.blob_dir / "uploads").glob("*"))


async def test_new_words_for_an_instrumental_cover_are_refused_whatever_the_adapter(service):
    request = CoverRequest("jazz", lyrics="la la", instrumental=True)  # as an adapter might build it
    with pytest.raises(UserError, match="can't be instrumental"):
        await service.submit_cover(ANN, request, flac(6.0, 44_100), "take.flac", TARGET)
