"""tracks keep their lyric timing, their take score and their LoRA style; jobs keep a result that is not a track

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRACK_COLUMNS = ("timing", "score", "style")


def upgrade() -> None:
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        for name in TRACK_COLUMNS:
            batch_op.add_column(sa.Column(name, sa.JSON(), nullable=True))
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("result", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("result")
    with op.batch_alter_table("tracks", schema=None) as batch_op:
        for name in reversed(TRACK_COLUMNS):
            batch_op.drop_column(name)
