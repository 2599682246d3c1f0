"""`songbot status`: one screen for operators, read from the database.

    songbot status · 2026-11-28 10:02:03 UTC
    Queue: 12 queued by 4 users (oldest waiting 3:12), 2 running · deliveries pending: telegram 3
    Engines: 2 up, 1 silent
      up      gpu-a  cuda:0  acestep  for 2:03:04  heard 2 s ago   #12 generating 40% (lease ends in 25 s)
      silent  gpu-b  cuda:1  acestep  for 0:10:00  heard 1:45 ago  #9 planning 0% (lease ended 1:15 ago)
    Slowest waiting user: Ann (telegram #a1b2c3d4), waiting 3:12, 2 songs queued
    Last errors:
      #41 job       The model produced broken audio for this song; please try again with another seed.

Users are shown by display name and a short hash of their platform id (see `storage.ops.overview`);
error texts are scrubbed of the bot tokens and cut to one line.
"""

from __future__ import annotations

from datetime import datetime

from storage.ops.overview import Depth, EngineStatus, ErrorLine, Overview, RunningJob, Waiting
from storage.ops.scrub import Scrubber

ERROR_CHARS = 110


def duration_text(seconds: float) -> str:
    """`42 s`, `3:12`, `2:03:04`."""
    whole = int(max(0.0, seconds))
    if whole < 60:
        return f"{whole} s"
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def queue_line(depth: Depth) -> str:
    """Queue depth by state, waiting users, the longest wait, pending deliveries."""
    queued, running = depth.jobs.get("queued", 0), depth.jobs.get("running", 0)
    line = f"Queue: {queued} queued"
    if queued:
        line += f" by {depth.waiting_users} users (oldest waiting {duration_text(depth.oldest_wait_s)})"
    line += f", {running} running"
    pending = ", ".join(f"{platform} {count}" for platform, count in sorted(depth.pending_deliveries.items()))
    line += f" · deliveries pending: {pending or 'none'}"
    return line + (" · PAUSED by an admin" if depth.paused else "")


def job_text(job: RunningJob, now: datetime) -> str:
    """`#12 generating 40% (lease ends in 25 s)`."""
    text = f"#{job.id} {job.stage} {job.progress:.0f}%"
    if job.lease_expires_at is not None:
        left = (job.lease_expires_at - now).total_seconds()
        text += f" (lease ends in {duration_text(left)})" if left >= 0 else f" (lease ended {duration_text(-left)} ago)"
    return text


def engine_line(engine: EngineStatus, now: datetime, up_within_s: float) -> str:
    """One engine: alive or silent, host, device, backend, uptime, last heartbeat, its batch."""
    heard_s = (now - engine.seen_at).total_seconds()
    state = "up" if heard_s <= up_within_s else "silent"
    batch = ", ".join(job_text(job, now) for job in engine.batch) or "idle"
    uptime = duration_text((now - engine.started_at).total_seconds())
    return (
        f"  {state:<7}{engine.host}  {engine.device}  {engine.backend}  for {uptime}  "
        f"heard {duration_text(heard_s)} ago  {batch}"
    )


def error_line(error: ErrorLine, secrets: list[str]) -> str:
    """`#41 job  <the sentence>`, scrubbed of tokens, on one line, cut to a width."""
    text = " ".join(Scrubber(secrets)(error.text).split())
    if len(text) > ERROR_CHARS:
        text = text[: ERROR_CHARS - 1] + "…"
    return f"  #{error.job_id} {error.source:<9} {text}"


def render_status(
    now: datetime,
    depth: Depth,
    engines: list[EngineStatus],
    waiting: Waiting | None,
    errors: list[ErrorLine],
    up_within_s: float,
    secrets: list[str],
) -> str:
    """The whole screen as text."""
    up = sum(1 for engine in engines if (now - engine.seen_at).total_seconds() <= up_within_s)
    lines = [f"songbot status · {now:%Y-%m-%d %H:%M:%S} UTC", queue_line(depth)]
    lines.append(f"Engines: {up} up" + (f", {len(engines) - up} silent" if len(engines) > up else ""))
    lines += [engine_line(engine, now, up_within_s) for engine in engines] or ["  none has started"]
    if waiting is None:
        lines.append("Slowest waiting user: nobody is waiting")
    else:
        songs = "1 song" if waiting.queued == 1 else f"{waiting.queued} songs"
        lines.append(f"Slowest waiting user: {waiting.who}, waiting {duration_text(waiting.waiting_s)}, {songs} queued")
    lines.append("Last errors:" if errors else "Last errors: none")
    lines += [error_line(error, secrets) for error in errors]
    return "\n".join(lines)


def status_text(overview: Overview, now: datetime, up_within_s: float, secrets: list[str]) -> str:
    """Read everything and render it."""
    return render_status(
        now,
        overview.depth(now),
        overview.engines(),
        overview.slowest_waiting(now),
        overview.last_errors(),
        up_within_s,
        secrets,
    )
