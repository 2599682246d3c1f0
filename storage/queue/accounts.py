"""Users: who they are, their role, ban flag, weight and quota override."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from storage.contract.errors import NotFound
from storage.contract.text import clean_line
from storage.contract.types import UserRef, UserView
from storage.db import read_only
from storage.models import users_table
from storage.queue.rows import user_view

users = users_table


class Accounts:
    """Reads and writes of the users table."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.reader = read_only(engine)

    def ensure(self, ref: UserRef, now: datetime, admin: bool = False) -> UserView:
        """The stored user for `ref`, created on first sight; name and role kept current.

        The row is created with `INSERT … ON CONFLICT DO NOTHING`, so a user's simultaneous first
        commands never collide on the unique (platform, platform_id) key.
        """
        role = "admin" if admin else "user"
        name = clean_line(ref.display_name)[:128]
        with self.engine.begin() as conn:
            conn.execute(_insert_new(conn, ref, name, role, now))
            row = conn.execute(
                select(users).where(users.c.platform == ref.platform, users.c.platform_id == ref.platform_id)
            ).one()
            if row.role != role or (name and row.display_name != name):
                conn.execute(
                    update(users).where(users.c.id == row.id).values(role=role, display_name=name or row.display_name)
                )
                row = conn.execute(select(users).where(users.c.id == row.id)).one()
            return user_view(row)

    def get(self, user_id: int) -> UserView | None:
        """A user by id, or None."""
        with self.reader.begin() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).one_or_none()
            return user_view(row) if row is not None else None

    def find(self, platform: str, platform_id: str) -> UserView:
        """A user by platform id.

        Raises:
            NotFound: nobody with that id has used the bot yet.
        """
        with self.reader.begin() as conn:
            row = conn.execute(
                select(users).where(users.c.platform == platform, users.c.platform_id == platform_id)
            ).one_or_none()
        if row is None:
            raise NotFound(f"I don't know a user {platform}:{platform_id} yet.")
        return user_view(row)

    def set_banned(self, user_id: int, banned: bool) -> None:
        """Ban or unban a user."""
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(banned=banned))

    def set_quota(self, user_id: int, quota: int | None) -> None:
        """Override a user's daily quota (None: back to the default)."""
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(daily_quota=quota))

    def set_weight(self, user_id: int, weight: float) -> None:
        """Change a user's share of the GPU (affects jobs submitted from now on)."""
        if weight <= 0:
            raise ValueError("weight must be positive")
        with self.engine.begin() as conn:
            conn.execute(update(users).where(users.c.id == user_id).values(weight=weight))

    def count(self) -> int:
        """How many users have ever used the bot."""
        with self.reader.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(users)).scalar_one())


def _insert_new(conn: Connection, ref: UserRef, name: str, role: str, now: datetime) -> Any:
    """The user's row, inserted unless it exists (both dialects spell ON CONFLICT the same way)."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return (
        dialect.insert(users)
        .values(
            platform=ref.platform,
            platform_id=ref.platform_id,
            display_name=name,
            role=role,
            banned=False,
            weight=1.0,
            last_vfinish=0.0,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=[users.c.platform, users.c.platform_id])
    )
