"""A full disk at submit gets its own sentence, not the generic failure (SQLite made full for real)."""

import pytest
from sqlalchemy import event

from bot.core.parser import SongRequest
from bot.core.service import SongService
from storage.contract.errors import DISK_FULL_AT_SUBMIT, Unavailable, disk_full
from storage.contract.types import DeliveryTarget, UserRef
from tests.helpers import make_settings

TARGET = DeliveryTarget("telegram", "chat-1")


@pytest.fixture
def service(tmp_path):
    return SongService.from_settings(make_settings(tmp_path))


def fill_the_disk(engine) -> None:
    """Every new connection may not grow the database past its size now: SQLite answers SQLITE_FULL."""
    with engine.connect() as conn:
        pages = conn.exec_driver_sql("PRAGMA page_count").scalar()

    @event.listens_for(engine, "connect")
    def cap(dbapi_connection, _record):
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    engine.dispose()


async def test_a_full_sqlite_database_at_submit_gets_its_own_sentence(service):
    await service.submit_song(UserRef("telegram", "1", "Ann"), SongRequest("warm up"), TARGET)
    fill_the_disk(service.queue.engine)
    with pytest.raises(Unavailable) as refused:
        for n in range(200):  # each song's rows take new pages soon enough
            user = UserRef("telegram", str(100 + n), "Bo")
            await service.submit_song(user, SongRequest("rain " * 90, lyrics="la la\n" * 600), TARGET)
    assert refused.value.user_message == DISK_FULL_AT_SUBMIT
    assert disk_full(refused.value)


def test_disk_full_is_read_from_the_os_error_behind_an_error():
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as error:
            raise RuntimeError("writing the upload failed") from error
    except RuntimeError as wrapped:
        assert disk_full(wrapped)
    assert not disk_full(OSError(13, "Permission denied")) and not disk_full(ValueError("no"))
