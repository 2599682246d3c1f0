import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from storage.settings import Settings
from tests.helpers import REPO


def test_defaults(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = Settings(_env_file=None)
    assert settings.data_dir == Path("./data")
    assert settings.db_url.startswith("sqlite:///") and settings.db_url.endswith("data/songbot.db")
    assert settings.engine_backend == "auto"
    assert settings.max_pending_per_user == 3
    assert settings.daily_quota == 30
    assert settings.max_duration_s == 240
    assert settings.max_source_mb == 20
    assert settings.engine_lease_s == 30
    assert settings.upload_retention_days == 7 and settings.upload_retention_s == 7 * 86400
    assert settings.telegram_token is None and settings.discord_token is None
    assert settings.telegram_api_base_url == "https://api.telegram.org/bot"
    assert settings.discord_gateway_url == "wss://gateway.discord.gg"


def test_reads_environment_and_lists(monkeypatch):
    monkeypatch.setenv("SONGBOT_DATA_DIR", "/srv/songbot")
    monkeypatch.setenv("ADMIN_IDS", "telegram:1, discord:2")
    monkeypatch.setenv("MAX_DURATION_S", "120")
    monkeypatch.setenv("TELEGRAM_TOKEN", "")
    settings = Settings(_env_file=None)
    assert settings.data_dir == Path("/srv/songbot")
    assert settings.admin_ids == frozenset({"telegram:1", "discord:2"})
    assert settings.is_admin("telegram", "1") and not settings.is_admin("telegram", "2")
    assert settings.max_duration_s == 120
    assert settings.telegram_token is None


def test_reads_dotenv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DAILY_QUOTA=7\nENGINE_BACKEND=sketch\n")
    settings = Settings()
    assert settings.daily_quota == 7 and settings.engine_backend == "sketch"


def test_frozen_and_validated():
    settings = Settings(_env_file=None)
    with pytest.raises(ValidationError):
        settings.daily_quota = 3  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, max_duration_s=601)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, engine_backend="magic")


def test_token_is_secret():
    settings = Settings(_env_file=None, telegram_token="123:SECRET")
    assert "SECRET" not in repr(settings)
    assert settings.telegram_token is not None
    assert settings.telegram_token.get_secret_value() == "123:SECRET"


def test_env_example_lists_every_setting_with_its_default():
    text = (REPO / ".env.example").read_text()
    listed = dict(re.findall(r"^([A-Z_]+)=(.*)$", text, flags=re.M))
    defaults = Settings(_env_file=None)
    for name, field in Settings.model_fields.items():
        env_name = field.validation_alias if isinstance(field.validation_alias, str) else name.upper()
        assert env_name in listed, f"{env_name} is missing from .env.example"
        value = getattr(defaults, name)
        shown = listed[env_name]
        if value is None or value == frozenset() or value == "" or value == ():
            assert shown == ""
        elif isinstance(value, bool):
            assert shown == str(value).lower()
        elif isinstance(value, Path):
            assert Path(shown) == value, env_name
        elif isinstance(value, float | int):
            assert float(shown) == float(value), env_name
        else:
            assert shown == str(value), env_name
