"""Chaos probe: engines and bots SIGKILLed at random while songs are made and posted. Prints one JSON object.

    python bench/chaos.py [--database-url URL] [--jobs 40] [--engine-kills 5] [--bot-kills 8]
                          [--seed 1] [--out bench/results/chaos-sqlite.json]

Real processes: two `songbot engine` (sketch backend, one encode process each, a 3 s lease) and one
`songbot bot` posting to a fake Telegram Bot API on loopback whose uploads take 0–2 s (part before Telegram
keeps the audio, part after: a kill can land on either side). Jobs are submitted straight to the queue, one
user (chat) each. Engines are SIGKILLed mid-job and started again at once; the bot is SIGKILLed while an
upload is in flight and started again. At the end (every job finished, every delivery closed):

- jobs_lost: not finished when the probe ended; jobs_duplicated: more than one track row for one job;
  jobs_dead / jobs_failed: given up by the queue.
- posts_interrupted: deliveries whose post was begun again after a kill (`resends` > 0); of them
  delivered (`done`) and told (`told`: the sentence pointing to /history); silent: neither.
- chats_with_the_song; told_without_the_song: chats that got only the sentence.
- songs_posted_twice_or_more: chats that got a song more than once, each copy after the first carrying
  the "may be a repeat" line (repeat_lines counts them); silent_chats: chats that got neither song nor sentence.
- orphan_encoders: encode processes of a killed engine still running 10 s after the kill.
- engine_kills, bot_kills_during_uploads: the kills made (a bot kill is skipped when no upload is left).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from bench.report import emit  # noqa: E402
from bot.core.delivery import REPEAT_NOTE  # noqa: E402
from migrations import upgrade  # noqa: E402
from storage.contract.spec import JobSpec  # noqa: E402
from storage.contract.types import TERMINAL, DeliveryTarget, QueueLimits, UserRef  # noqa: E402
from storage.db import make_engine, utcnow  # noqa: E402
from storage.models import tracks_table  # noqa: E402
from storage.queue.accounts import Accounts  # noqa: E402
from storage.queue.jobs import Queue  # noqa: E402
from storage.queue.outbox import Outbox  # noqa: E402
from tests.fakes.telegram_api import FakeTelegramAPI  # noqa: E402

CHAT_BASE = 7000
SCHEMA = "chaos_probe"


class SlowTelegram(FakeTelegramAPI):
    """The fake Bot API with uploads that take a while: some before Telegram keeps the audio, some after."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__()
        self.rng = rng
        self.in_flight = 0

    async def _api_sendAudio(self, params: Any, files: Any) -> Any:
        self.in_flight += 1
        try:
            await asyncio.sleep(self.rng.uniform(0.0, 1.0))
            message = await super()._api_sendAudio(params, files)
            await asyncio.sleep(self.rng.uniform(0.0, 1.0))  # kept, but the bot has no answer yet
            return message
        finally:
            self.in_flight -= 1


def database(url: str | None, folder: Path) -> str:
    """A fresh, migrated database: a SQLite file in `folder`, or a schema of its own on the server."""
    if url is None:
        target = f"sqlite:///{folder / 'chaos.db'}"
    else:
        with make_engine(url).begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}")
        target = f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{SCHEMA}"
    upgrade(make_engine(target))
    return target


def submit_all(db_url: str, jobs: int) -> list[int]:
    """One 10 s song per chat, straight into the queue (no limits in the way)."""
    db = make_engine(db_url)
    queue = Queue(db, QueueLimits(max_pending_per_user=10, daily_quota=100, max_queued_total=10_000))
    ids = []
    for n in range(jobs):
        user = Accounts(db).ensure(UserRef("telegram", str(CHAT_BASE + n), f"user{n}"), utcnow())
        target = DeliveryTarget("telegram", str(CHAT_BASE + n))
        ids.append(queue.submit(user.id, "song", JobSpec(caption=f"probe {n}", duration_s=10), n, utcnow(), target).id)
    return ids


def environment(db_url: str, data: Path, api: FakeTelegramAPI) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_", "DATABASE_"))}
    env.update(
        {
            "PYTHONPATH": str(REPO),
            "DATABASE_URL": db_url,
            "SONGBOT_DATA_DIR": str(data),
            "MODEL_DIR": str(data / "no-models"),
            "ENGINE_BACKEND": "sketch",
            "ENGINE_LEASE_S": "3",
            "ENGINE_POLL_S": "0.2",
            "ENGINE_ENCODE_PROCESSES": "1",
            "TELEGRAM_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.base_url,
            "TELEGRAM_FILE_BASE_URL": api.file_base_url,
            "DELIVERY_POLL_S": "0.2",
            "DELIVERY_LEASE_S": "2",
            "STATUS_EDIT_INTERVAL_S": "1",
            "LOG_LEVEL": "WARNING",
        }
    )
    return env


class Fleet:
    """The probe's processes: two engines and a bot, each restarted right after it is killed."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs = env, logs
        self.engines: list[subprocess.Popen[bytes]] = []
        self.bot: subprocess.Popen[bytes] | None = None
        self.orphan_checks: list[list[int]] = []

    def spawn(self, command: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{command}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "songbot", command], env=self.env, stdout=log, stderr=log, cwd=self.logs
            )

    def start(self) -> None:
        self.engines = [self.spawn("engine"), self.spawn("engine")]
        self.bot = self.spawn("bot")

    def kill_engine(self, index: int) -> None:
        engine = self.engines[index]
        self.orphan_checks.append(children_of(engine.pid))
        engine.kill()
        engine.wait()
        self.engines[index] = self.spawn("engine")

    def kill_bot(self) -> None:
        assert self.bot is not None
        self.bot.kill()
        self.bot.wait()
        self.bot = self.spawn("bot")

    def stop(self) -> None:
        for process in [*self.engines, self.bot]:
            if process is not None and process.poll() is None:
                process.terminate()
        for process in [*self.engines, self.bot]:
            if process is not None:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError):
                continue
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


async def chaos(
    fleet: Fleet, api: SlowTelegram, rng: random.Random, engine_kills: int, bot_kills: int
) -> dict[str, int]:
    """Kill engines at random moments and the bot while an upload is in flight; the kills made, by kind."""
    plan = ["engine"] * engine_kills + ["bot"] * bot_kills
    rng.shuffle(plan)
    made = {"engine": 0, "bot": 0}
    for what in plan:
        await asyncio.sleep(rng.uniform(1.0, 4.0))
        if what == "engine":
            fleet.kill_engine(rng.randrange(2))
            made["engine"] += 1
            continue
        deadline = time.monotonic() + 20
        while api.in_flight == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if api.in_flight == 0:  # nothing left to upload: a kill now would interrupt no post
            continue
        await asyncio.sleep(rng.uniform(0.0, 1.5))
        fleet.kill_bot()
        made["bot"] += 1
    return made


def settled(db_url: str, ids: list[int]) -> bool:
    db = make_engine(db_url)
    queue, outbox = Queue(db), Outbox(db)
    for job_id in ids:
        job, delivery = queue.get(job_id), outbox.for_job(job_id)
        if job is None or job.status not in TERMINAL or delivery is None or delivery.state == "pending":
            return False
    return True


def tally(db_url: str, ids: list[int], api: FakeTelegramAPI, fleet: Fleet) -> dict[str, Any]:
    db = make_engine(db_url)
    queue, outbox = Queue(db), Outbox(db)
    jobs = {job_id: queue.get(job_id) for job_id in ids}
    deliveries = {job_id: outbox.for_job(job_id) for job_id in ids}
    with db.begin() as conn:
        track_counts = dict(
            conn.execute(select(tracks_table.c.job_id, func.count()).group_by(tracks_table.c.job_id)).all()
        )
    songs, told = {}, {}
    for n, job_id in enumerate(ids):
        messages = api.chat_messages(CHAT_BASE + n)  # what the chat shows now (a status edited to the sentence too)
        songs[job_id] = [m for m in messages if "audio" in m]
        told[job_id] = [m for m in messages if "/history" in (m.get("text") or "")]
    interrupted = [j for j in ids if (d := deliveries[j]) is not None and d.resends > 0]
    return {
        "jobs": len(ids),
        "jobs_succeeded": sum(job is not None and job.status == "succeeded" for job in jobs.values()),
        "jobs_lost": sum(job is None or job.status not in TERMINAL for job in jobs.values()),
        "jobs_duplicated": sum(count > 1 for count in track_counts.values()),
        "jobs_dead": sum(job is not None and job.status == "dead" for job in jobs.values()),
        "jobs_failed": sum(job is not None and job.status == "failed" for job in jobs.values()),
        "posts_interrupted": len(interrupted),
        "posts_interrupted_delivered": sum(deliveries[j].state == "done" for j in interrupted),  # type: ignore[union-attr]
        "posts_interrupted_told": sum(deliveries[j].state == "told" for j in interrupted),  # type: ignore[union-attr]
        "posts_interrupted_silent": sum(not songs[j] and not told[j] for j in interrupted),
        "deliveries_by_state": _count(d.state if d else "none" for d in deliveries.values()),
        "chats_with_the_song": sum(bool(songs[j]) for j in ids),
        "told_without_the_song": sum(bool(told[j]) and not songs[j] for j in ids),
        "songs_posted_twice_or_more": sum(len(songs[j]) > 1 for j in ids),
        "repeat_lines": sum(REPEAT_NOTE in (m.get("caption") or "") for j in ids for m in songs[j]),
        "silent_chats": sum(not songs[j] and not told[j] for j in ids),
        "orphan_encoders": sum(alive(pid) for pids in fleet.orphan_checks for pid in pids),
    }


def _count(values: Any) -> dict[str, int]:
    counted: dict[str, int] = {}
    for value in values:
        counted[value] = counted.get(value, 0) + 1
    return counted


async def probe(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    api = SlowTelegram(rng)
    await api.start()
    folder = Path(tempfile.mkdtemp(prefix="songbot-chaos-"))
    db_url = await asyncio.to_thread(database, args.database_url, folder)
    ids = await asyncio.to_thread(submit_all, db_url, args.jobs)
    fleet = Fleet(environment(db_url, folder / "data", api), folder)
    made = {"engine": 0, "bot": 0}
    started = time.monotonic()
    fleet.start()
    try:
        made = await chaos(fleet, api, rng, args.engine_kills, args.bot_kills)
        deadline = time.monotonic() + args.timeout_s
        while time.monotonic() < deadline and not await asyncio.to_thread(settled, db_url, ids):
            await asyncio.sleep(0.5)
        await asyncio.sleep(10)  # the last kill's encoders had 10 s to go
        result = await asyncio.to_thread(tally, db_url, ids, api, fleet)
    finally:
        fleet.stop()
        await api.stop()
    result.update(
        {
            "database": "sqlite" if args.database_url is None else "postgresql",
            "engines": 2,
            "engine_kills": made["engine"],
            "bot_kills_during_uploads": made["bot"],
            "seconds": round(time.monotonic() - started, 1),
            "seed": args.seed,
            "lease_s": 3,
            "logs": str(folder),
        }
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="a PostgreSQL server (a schema of its own is made)")
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--engine-kills", type=int, default=5)
    parser.add_argument("--bot-kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout-s", type=float, default=600)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    emit(asyncio.run(probe(args)), args.out)


if __name__ == "__main__":
    main()
