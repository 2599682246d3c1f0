"""Secrets are blanked out of stored error texts as out of log lines (one scrubber, `storage.ops.scrub`)."""

from sqlalchemy import select

from storage.contract.spec import JobSpec
from storage.contract.types import DeliveryTarget, UserRef
from storage.db import utcnow
from storage.models import deliveries_table, jobs_table
from storage.ops.scrub import Scrubber
from storage.queue.accounts import Accounts
from storage.queue.jobs import Queue
from storage.queue.outbox import Outbox

KNOWN = "plain-secret-the-operator-set"
# The shapes of real tokens, built from plain words: none of these is or was a real token.
TELEGRAM = "1234567890:" + "not-a-real-token-" * 2 + "x"
DISCORD_BOT = "not-a-real-discord-bot-id" + ".fake01." + "this-is-a-test-token-only-0"
INTERACTION = "aW50ZXJhY3Rpb246MTIzNDU2Nzg5MDpzZWNyZXQtdG9rZW4"


def test_known_secrets_and_token_shapes_are_blanked():
    scrub = Scrubber([KNOWN, ""])
    text = (
        f"key {KNOWN}; GET https://api.telegram.org/bot{TELEGRAM}/getMe; Authorization: Bot {DISCORD_BOT}; "
        f"PATCH https://discord.com/api/v10/webhooks/1086653567494565768/{INTERACTION}/messages/@original"
    )
    clean = scrub(text)
    for secret in (KNOWN, TELEGRAM, DISCORD_BOT, INTERACTION):
        assert secret not in clean
    assert "webhooks/1086653567494565768/<token>/messages/@original" in clean
    assert scrub("ConnectionError('platform down') at 12:30 for job 7") == (
        "ConnectionError('platform down') at 12:30 for job 7"
    )


def submitted(db):
    user = Accounts(db).ensure(UserRef("telegram", "1"), utcnow()).id
    queue = Queue(db, scrub=Scrubber([KNOWN]))
    job = queue.submit(user, "song", JobSpec(caption="x", duration_s=10), 1, utcnow(), DeliveryTarget("telegram", "c"))
    return queue, job


def test_the_outbox_stores_its_errors_scrubbed(db):
    queue, job = submitted(db)
    outbox = Outbox(db, queue.scrub)
    delivery = outbox.for_job(job.id)
    outbox.retry_later(
        delivery.id, f"NetworkError('https://api.telegram.org/bot{TELEGRAM}/sendAudio') {KNOWN}", utcnow(), 1, 8
    )
    with db.begin() as conn:
        stored = conn.execute(select(deliveries_table.c.error)).scalar_one()
    assert TELEGRAM not in stored and KNOWN not in stored and "bot<token>/sendAudio" in stored


def test_a_failed_job_stores_its_error_scrubbed(db):
    queue, _ = submitted(db)
    [claimed] = queue.claim("engine", 1, utcnow(), 30)
    assert queue.fail(claimed, "engine", f"upload refused at /webhooks/1/{INTERACTION} ({KNOWN})", utcnow())
    with db.begin() as conn:
        stored = conn.execute(select(jobs_table.c.error)).scalar_one()
    assert stored == "upload refused at /webhooks/1/<token> (<token>)"
