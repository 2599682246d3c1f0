"""`songbot status`: queue depth, engines with their batches, the slowest waiting user (not by id), clean errors."""

from datetime import datetime, timedelta

from migrations import upgrade
from songbot import cli
from songbot.cli import main
from songbot.status import duration_text, status_text
from storage.contract.spec import JobSpec
from storage.contract.types import DeliveryTarget, QueueLimits, UserRef
from storage.db import make_engine
from storage.ops.overview import Overview
from storage.queue.accounts import Accounts
from storage.queue.engines import EngineIdentity, EngineRoster
from storage.queue.jobs import Queue
from storage.queue.outbox import Outbox

NOW = datetime(2026, 11, 28, 12, 0, 0)
TOKEN = "123456:SECRET-TOKEN"
GPU_A = EngineIdentity("gpu-a:cuda:0:11:aaaaaa", "gpu-a", "cuda:0", "acestep", 11)
GPU_B = EngineIdentity("gpu-b:cuda:1:12:bbbbbb", "gpu-b", "cuda:1", "acestep", 12)


def fill(db):
    queue = Queue(db, QueueLimits(max_pending_per_user=10, daily_quota=0))
    accounts = Accounts(db)
    ann = accounts.ensure(UserRef("telegram", "555001", "Ann"), NOW).id
    bob = accounts.ensure(UserRef("discord", "777002", ""), NOW).id
    target = DeliveryTarget("telegram", "chat")

    def submit(user, minutes_ago):
        spec = JobSpec(caption="rain", duration_s=10)
        return queue.submit(user, "song", spec, 1, NOW - timedelta(minutes=minutes_ago), target)

    for user, minutes_ago in ((bob, 9), (ann, 5), (bob, 8), (ann, 4), (bob, 1)):
        submit(user, minutes_ago)
    [claimed] = queue.claim(GPU_A.owner, 1, NOW - timedelta(seconds=20), 30)
    queue.report(claimed, GPU_A.owner, "generating", 40.0, NOW - timedelta(seconds=5), 30)
    [failing] = queue.claim(GPU_B.owner, 1, NOW - timedelta(minutes=3), 30)
    queue.fail(failing, GPU_B.owner, "The model produced broken audio for this song.", NOW - timedelta(minutes=2))
    outbox = Outbox(db)
    delivery = outbox.for_job(claimed.id)
    outbox.retry_later(delivery.id, f"NetworkError('https://api.telegram.org/bot{TOKEN}/sendAudio')", NOW, 5, 8)
    roster = EngineRoster(db)
    roster.beat(GPU_A, NOW - timedelta(hours=2))
    roster.beat(GPU_A, NOW - timedelta(seconds=2))
    roster.beat(GPU_B, NOW - timedelta(minutes=2))
    return claimed.id, failing.id


def test_one_screen_with_everything_an_operator_needs(db):
    running, broken = fill(db)
    text = status_text(Overview(db), NOW, up_within_s=30, secrets=[TOKEN])
    print(text)
    lines = text.splitlines()
    assert lines[1].startswith("Queue: 3 queued by 2 users (oldest waiting 8:00), 1 running")
    assert "deliveries pending: telegram 5" in lines[1]
    assert lines[2] == "Engines: 1 up, 1 silent"
    assert lines[3].split()[:5] == ["up", "gpu-a", "cuda:0", "acestep", "for"]
    assert f"#{running} generating 40% (lease ends in 25 s)" in lines[3] and "heard 2 s ago" in lines[3]
    assert lines[4].split()[:2] == ["silent", "gpu-b"] and lines[4].endswith("idle")
    assert lines[5].startswith("Slowest waiting user: (no name) (discord #") and "waiting 8:00, 2 songs" in lines[5]
    assert "555001" not in text and "777002" not in text  # never the platform ids
    assert f"#{broken} job" in text and "broken audio" in text
    assert TOKEN not in text and "bot<token>/sendAudio" in text


def test_an_empty_service_says_so(db):
    text = status_text(Overview(db), NOW, up_within_s=30, secrets=[])
    assert "Queue: 0 queued, 0 running · deliveries pending: none" in text
    assert "none has started" in text and "nobody is waiting" in text and "Last errors: none" in text


def test_the_command_prints_the_screen(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.logs, "configure", lambda *args, **kwargs: None)  # no handler on capsys's stream
    monkeypatch.setenv("SONGBOT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env
    made = make_engine(f"sqlite:///{tmp_path / 'data' / 'songbot.db'}")  # what `songbot run` would have made
    upgrade(made)
    made.dispose()
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("songbot status · ") and f"Data folder: {tmp_path / 'data'}" in out


def test_status_where_no_database_is_says_where_it_looked_and_makes_nothing(tmp_path, monkeypatch, capsys):
    """`songbot status` in another folder: one sentence naming the path, no new empty data/ and queue."""
    monkeypatch.setattr(cli.logs, "configure", lambda *args, **kwargs: None)
    monkeypatch.delenv("SONGBOT_DATA_DIR", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env, no data/
    assert main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"There is no songbot database at {tmp_path / 'data' / 'songbot.db'};")
    assert "SONGBOT_DATA_DIR" in err and list(tmp_path.iterdir()) == []


def test_the_command_says_one_sentence_when_the_database_is_down(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli.logs, "configure", lambda *args, **kwargs: None)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none?connect_timeout=2")
    monkeypatch.chdir(tmp_path)
    assert main(["status"]) == 1
    assert capsys.readouterr().err.strip().startswith("Could not read the database (")


def test_durations():
    assert [duration_text(s) for s in (-3, 42, 192, 7384)] == ["0 s", "42 s", "3:12", "2:03:04"]
