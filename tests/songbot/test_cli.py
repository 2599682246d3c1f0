"""The `songbot` command: help for every subcommand, one-sentence failures, the planner LM in `models check`."""

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tomllib

import discord
import pytest
import yarl

from songbot import cli
from tests.fakes.discord_api import FakeDiscord
from tests.helpers import REPO
from tests.storage.ops.test_repeats import closed_port


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No .env, no token from the environment, and the test's own log handlers left alone."""
    monkeypatch.chdir(tmp_path)
    for name in ("DISCORD_TOKEN", "TELEGRAM_TOKEN", "DISCORD_API_BASE_URL", "MODEL_DIR", "LM_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli.logs, "configure", lambda *args, **kwargs: None)


def subcommands(parser: argparse.ArgumentParser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from subcommands(sub, (*path, name))


def test_every_subcommand_has_a_description_in_its_help(capsys):
    found = dict(subcommands(cli.build_parser()))
    assert {("run",), ("chat",), ("plan",), ("models", "check"), ("discord", "sync")} <= set(found)
    for path, parser in found.items():
        assert parser.description and len(parser.description) > 15, path
        with pytest.raises(SystemExit) as done:
            cli.main([*path, "--help"])
        assert done.value.code == 0
        assert parser.description.split(".")[0] in " ".join(capsys.readouterr().out.split()), path


def test_plan_help_lists_the_plan_arguments(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["plan", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: songbot plan") and "--instrumental" in out and "--seed" in out


def test_plan_passes_its_arguments_on(monkeypatch):
    seen = []
    monkeypatch.setattr("engine.acestep.lm.cli.plan_main", lambda argv: seen.append(argv) or 0)
    assert cli.main(["plan", "a folk song", "--seed", "3", "--json"]) == 0
    assert seen == [["a folk song", "--seed", "3", "--json"]]


def one_sentence(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


def test_discord_sync_without_a_token_is_one_sentence(capsys):
    assert cli.main(["discord", "sync"]) == 2
    assert "DISCORD_TOKEN is not set" in one_sentence(capsys.readouterr().err)


def test_discord_sync_that_cannot_connect_is_one_sentence(monkeypatch, capsys):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setattr(discord.http.Route, "BASE", discord.http.Route.BASE)  # restored after the test
    monkeypatch.setenv("DISCORD_TOKEN", "some.bot.token")
    monkeypatch.setenv("DISCORD_API_BASE_URL", f"http://127.0.0.1:{port}/api/v10")
    assert cli.main(["discord", "sync", "--guild", "5"]) == 1
    assert one_sentence(capsys.readouterr().err).startswith(f"Could not reach Discord at http://127.0.0.1:{port}")


async def test_discord_sync_with_a_rejected_token_is_one_sentence(monkeypatch, capsys):
    async with FakeDiscord() as fake:
        monkeypatch.setattr(discord.http.Route, "BASE", fake.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY", yarl.URL(fake.gateway_url))
        monkeypatch.setenv("DISCORD_TOKEN", "not.the.token")
        monkeypatch.setenv("DISCORD_API_BASE_URL", fake.api_base)
        assert await asyncio.to_thread(cli.main, ["discord", "sync", "--guild", fake.guild_id]) == 1
    assert "Discord refused the token" in one_sentence(capsys.readouterr().err)


def lm_folder(model_dir, name):
    folder = model_dir / name
    folder.mkdir(parents=True)
    for file in ("config.json", "tokenizer.json", "model.safetensors"):
        (folder / file).write_text("{}")


def test_models_check_mentions_the_optional_planner_lm(tmp_path, capsys):
    assert cli.main(["models", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "Planner LM (optional): none" in out and "acestep-5Hz-lm-1.7B" in out
    lm_folder(tmp_path, "acestep-5Hz-lm-0.6B")
    cli.main(["models", "check", str(tmp_path)])
    assert (
        "Planner LM (optional): acestep-5Hz-lm-0.6B (LM_MODEL=acestep-5Hz-lm-1.7B is not there, so the engine "
        "loads this one)."
    ) in capsys.readouterr().out
    lm_folder(tmp_path, "acestep-5Hz-lm-1.7B")
    cli.main(["models", "check", str(tmp_path)])
    assert "Planner LM (optional): acestep-5Hz-lm-1.7B.\n" in capsys.readouterr().out


@pytest.mark.parametrize(("command", "umask"), [("engine", 0o077), ("bot", 0o077), ("models", 0o022)])
def test_the_service_commands_create_owner_only_files(monkeypatch, command, umask):
    seen = []
    monkeypatch.setattr(cli, "dispatch", lambda args, settings: seen.append(os.umask(0o022)) or 0)
    previous = os.umask(0o022)
    try:
        assert cli.main([command] if command != "models" else ["models", "check"]) == 0
    finally:
        os.umask(previous)
    assert seen == [umask]


@pytest.mark.parametrize("command", ["engine", "bot", "run", "chat", "status"])
def test_a_command_started_against_an_unreachable_database_says_so_in_one_sentence(tmp_path, command):
    port = closed_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "DISCORD_", "DATABASE_"))},
        "PYTHONPATH": str(REPO),
        "SONGBOT_DATA_DIR": str(tmp_path / "data"),
        "MODEL_DIR": str(tmp_path / "no-models"),
        "ENGINE_BACKEND": "sketch",
        "DATABASE_URL": f"postgresql+psycopg://songbot:secret-pw@127.0.0.1:{port}/test",
    }
    done = subprocess.run(
        [sys.executable, "-m", "songbot", command],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    # The last line, and the only one about the database (`bot` and `run` first say they open the chat).
    lines = done.stderr.strip().splitlines()
    assert [line for line in lines if "database" in line.lower()] == lines[-1:]
    assert "DATABASE_URL" in lines[-1] and "secret-pw" not in done.stderr


def test_version_is_the_packages(capsys):
    """`songbot --version` prints the version pyproject.toml declares (it used to be an error)."""
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"songbot {declared}\n"
