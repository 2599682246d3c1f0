"""The bot probes an upload and never decodes it (the engine decodes it once); odd headers get a sentence."""

import io

import numpy as np
import pytest
import soundfile as sf

from bot.core.parser import CoverRequest
from bot.core.service import SongService
from storage.contract.errors import BadAudio
from storage.contract.types import DeliveryTarget, UserRef
from storage.media import decoding
from tests.helpers import make_settings

ANN = UserRef("telegram", "1", "Ann")
TARGET = DeliveryTarget("telegram", "chat-1")


@pytest.fixture
def service(tmp_path):
    return SongService.from_settings(make_settings(tmp_path))


def flac(seconds: float, rate: int) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    sf.write(buffer, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate, format="FLAC")
    return buffer.getvalue()


async def test_a_cover_upload_is_probed_not_decoded(service, monkeypatch):
    def decode(*_args):
        raise AssertionError("the bot decoded an upload; only the engine should")

    monkeypatch.setattr(decoding, "decode", decode)
    job = await service.submit_cover(ANN, CoverRequest("jazz", 0.5), flac(12.0, 44_100), "take.flac", TARGET)
    assert job.spec.duration_s == 12.0 and service.blobs.exists(job.source_blob)


async def test_a_rate_no_recording_uses_is_refused_at_submit(service):
    with pytest.raises(BadAudio, match="384,000 Hz, which no recording uses") as refused:
        await service.submit_cover(ANN, CoverRequest("jazz", 0.5), flac(12.0, 384_000), "hi-res.flac", TARGET)
    assert "\n" not in refused.value.user_message
    assert list(service.blobs.uploads()) == []  # nothing kept
