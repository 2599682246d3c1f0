"""An engine whose database stops answering polls on, and logs the outage once, not per poll."""

from __future__ import annotations

import logging
import threading
import time

from engine.main import build_worker
from storage.db import make_engine
from storage.ops.repeats import RepeatedErrors
from storage.queue.jobs import Queue
from tests.helpers import make_settings
from tests.storage.ops.test_repeats import closed_port


class FrozenClock:
    """Time that does not move: only the first failure is due to be logged."""

    def __call__(self) -> float:
        return 0.0


def test_an_engine_polling_an_unreachable_database_logs_it_once(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="songbot.engine")
    worker = build_worker(make_settings(tmp_path, engine_poll_s=0.01))
    worker.queue = Queue(make_engine(f"postgresql+psycopg://songbot@127.0.0.1:{closed_port()}/test"))
    worker.claim_errors = RepeatedErrors(logging.getLogger("songbot.engine"), "claiming", clock=FrozenClock())
    thread = threading.Thread(target=worker.run, name="test-engine", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60  # a bound for a busy machine; 20 polls take well under a second
        while worker.claim_errors.count < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert worker.claim_errors.count >= 20
    about_claims = [r for r in caplog.records if r.getMessage().startswith("claiming")]
    assert [r.getMessage() for r in about_claims] == ["claiming failed"]
    assert sum(r.exc_info is not None for r in caplog.records) == 1  # one traceback for the whole outage
