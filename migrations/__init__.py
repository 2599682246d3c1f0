"""Alembic environment and versions for the songbot schema, and the upgrade every process runs on start.

`storage/` never imports this package: the composition roots (the bot's service, the engine) call
`upgrade(engine)` with the engine they built.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Create or upgrade the schema to `revision` with Alembic."""
    with engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def alembic_config() -> Config:
    """An Alembic config pointing at this folder, wherever it is installed."""
    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    return config
