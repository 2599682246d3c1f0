"""A NUL in a stored job's text never reaches the engine's writes: the job succeeds on every database.

A row queued before text was cleaned at the edge (or written by anything but the bot) still carries
the NUL in its JSON spec; reading it back cleans it, and the PostgreSQL engine drops NULs from every
statement, so the track row stores fine and the engine goes on to the next job.
"""

from sqlalchemy import select

from engine.main import build_worker
from storage.contract.spec import JobSpec
from storage.contract.types import SUCCEEDED, UserRef
from storage.db import utcnow
from storage.models import jobs_table
from storage.queue.accounts import Accounts
from storage.queue.library import Library
from tests.helpers import make_settings


def test_a_job_with_nul_text_succeeds_and_the_next_one_too(db, tmp_path):
    worker = build_worker(make_settings(tmp_path, database_url=db.url.render_as_string(hide_password=False)))
    queue = worker.queue
    user = Accounts(db).ensure(UserRef("console", "u"), utcnow(), admin=True).id
    dirty = queue.submit(user, "song", JobSpec(caption="rain", duration_s=10), 3, utcnow())
    with db.begin() as conn:  # as an old row, or one written past the bot, would be
        spec = {"caption": "rain\x00 at night", "lyrics": "la\x00\nla", "duration_s": 10}
        conn.execute(jobs_table.update().where(jobs_table.c.id == dirty.id).values(spec=spec))
    assert worker.run_once()
    clean = queue.submit(user, "song", JobSpec(caption="sun", duration_s=10), 4, utcnow())
    assert worker.run_once()
    assert [queue.get(job.id).status for job in (dirty, clean)] == [SUCCEEDED, SUCCEEDED]
    track = Library(db).get(dirty.id)
    assert "\x00" not in track.caption + track.lyrics + track.title
    with db.begin() as conn:
        assert conn.execute(select(jobs_table.c.error).where(jobs_table.c.id == dirty.id)).scalar() is None
