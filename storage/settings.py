"""Settings: one frozen object read from the environment and `.env`.

Every key here is listed, with its default and a comment, in `.env.example`. The composition
root of each process builds one `Settings` and passes it down; nothing reads the environment
anywhere else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.blobs.s3 import parse_blob_url

# The duration bounds live in `values.py`; adapters that show them in help texts may read them here.
from storage.contract.values import MAX_DURATION_S as MODEL_MAX_DURATION_S
from storage.contract.values import MIN_DURATION_S

__all__ = ["MIN_DURATION_S", "MODEL_MAX_DURATION_S", "Settings"]

IdSet = Annotated[frozenset[str], NoDecode]
Devices = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    """Everything an operator can set. Field `x` is read from the variable `X`."""

    model_config = SettingsConfigDict(env_file=".env", frozen=True, extra="ignore", populate_by_name=True)

    # Where things live.
    data_dir: Path = Field(Path("./data"), validation_alias="SONGBOT_DATA_DIR")
    database_url: str = ""
    model_dir: Path = Path("./models")
    log_level: str = "INFO"

    # Engine.
    engine_backend: Literal["auto", "acestep", "sketch"] = "auto"
    engine_device: str = "auto"
    engine_max_batch: int = Field(4, ge=1, le=64)
    engine_lease_s: float = Field(30.0, gt=0)
    engine_max_attempts: int = Field(3, ge=1)
    engine_poll_s: float = Field(0.5, gt=0)
    engine_encode_processes: int = Field(4, ge=0, le=64)
    engine_store_attempts: int = Field(3, ge=1)
    engine_store_backoff_s: float = Field(1.0, ge=0)
    engine_exact_batches: bool = True
    lm_model: str = "acestep-5Hz-lm-1.7B"
    lm_backend: Literal["torch", "vllm"] = "torch"
    lm_thinking: bool = True

    # Limits.
    max_pending_per_user: int = Field(3, ge=1)
    daily_quota: int = Field(30, ge=0)
    max_duration_s: int = Field(240, ge=MIN_DURATION_S, le=MODEL_MAX_DURATION_S)
    default_duration_s: int = Field(60, ge=MIN_DURATION_S, le=MODEL_MAX_DURATION_S)
    max_source_mb: float = Field(20.0, gt=0)
    max_source_duration_s: int = Field(600, ge=MIN_DURATION_S)
    max_prompt_chars: int = Field(500, ge=10)
    max_lyrics_chars: int = Field(4000, ge=10)
    max_queued_total: int = Field(1000, ge=1)
    upload_retention_days: float = Field(7.0, ge=0)

    # People.
    admin_ids: IdSet = frozenset()
    allowed_user_ids: IdSet = frozenset()
    allowed_chat_ids: IdSet = frozenset()
    allowed_guild_ids: IdSet = frozenset()

    # Delivery.
    status_edit_interval_s: float = Field(3.0, ge=0)
    delivery_poll_s: float = Field(0.5, gt=0)
    delivery_lease_s: float = Field(30.0, gt=0)

    # Blobs: a local folder by default, or an S3-compatible object store shared by several hosts.
    blob_url: str = ""
    blob_endpoint_url: str = ""

    # Operations: metrics and health endpoints, one engine per device.
    bot_metrics_port: int | None = Field(None, ge=0, le=65535)
    engine_metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    engine_devices: Devices = ()

    # Telegram.
    telegram_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    telegram_file_base_url: str = "https://api.telegram.org/file/bot"
    telegram_webhook_url: str = ""
    telegram_webhook_listen: str = "127.0.0.1"
    telegram_webhook_port: int = 8443

    # Discord.
    discord_token: SecretStr | None = None
    discord_api_base_url: str = "https://discord.com/api/v10"
    discord_gateway_url: str = "wss://gateway.discord.gg"

    @field_validator("admin_ids", "allowed_user_ids", "allowed_chat_ids", "allowed_guild_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        """Accept `a,b,c` from the environment as well as any iterable from code."""
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("engine_devices", mode="before")
    @classmethod
    def _split_devices(cls, value: object) -> object:
        """`cuda:0,cuda:1` from the environment; duplicates are refused (two engines on one device)."""
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, tuple | list) and len(set(value)) != len(value):
            raise ValueError("ENGINE_DEVICES lists a device twice; name each device once.")
        return value

    @field_validator("blob_url")
    @classmethod
    def _check_blob_url(cls, value: str) -> str:
        if value:
            parse_blob_url(value)
        return value

    @field_validator("bot_metrics_port", "engine_metrics_port", mode="before")
    @classmethod
    def _empty_port_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @field_validator("telegram_token", "discord_token", mode="before")
    @classmethod
    def _empty_token_is_none(cls, value: object) -> object:
        return None if value in ("", None) else value

    @property
    def db_url(self) -> str:
        """The database URL, defaulting to SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'songbot.db').resolve()}"

    @property
    def blob_dir(self) -> Path:
        """Where audio files (uploads and results) are kept."""
        return self.data_dir / "blobs"

    def engine_metrics_port_of(self, index: int) -> int | None:
        """The metrics port of the `index`-th engine of ENGINE_DEVICES: ENGINE_METRICS_PORT + index (0 stays 0)."""
        if not self.engine_metrics_port:
            return self.engine_metrics_port
        return self.engine_metrics_port + index

    @property
    def blob_work_dir(self) -> Path:
        """With an object store: local scratch files and downloaded copies (`cache/tracks/…`)."""
        return self.data_dir / "blob-work"

    @property
    def upload_retention_s(self) -> float | None:
        """How long an uploaded source is kept, in seconds; None keeps uploads for ever."""
        return self.upload_retention_days * 86400 if self.upload_retention_days > 0 else None

    @property
    def max_source_bytes(self) -> int:
        """The largest upload accepted for a cover, in bytes."""
        return int(self.max_source_mb * 1024 * 1024)

    def secrets(self) -> list[str]:
        """The bot tokens that are set: never to appear in a log line."""
        return [token.get_secret_value() for token in (self.telegram_token, self.discord_token) if token]

    def is_admin(self, platform: str, platform_id: str) -> bool:
        """Whether `platform:platform_id` is listed in ADMIN_IDS."""
        return f"{platform}:{platform_id}" in self.admin_ids

    def user_allowed(self, platform: str, platform_id: str) -> bool:
        """Whether the user allowlist (empty = everyone) admits this user."""
        return not self.allowed_user_ids or f"{platform}:{platform_id}" in self.allowed_user_ids
