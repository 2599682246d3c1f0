"""The `songbot` command.

songbot run                  the engine (supervised child) + the bots whose tokens are set,
or the console chat when none is
songbot chat                 the local console chat (the engine runs as a child process)
songbot engine               the engine process alone
songbot bot                  the bot process alone
songbot models check [DIR]   which checkpoint files are present or missing
songbot models make-tiny DIR a tiny random checkpoint set in the official layout, and the style loras/demo (for tests)
songbot models download DIR  the official checkpoints from Hugging Face
songbot discord sync [--guild ID]  register the Discord commands (globally, or in one guild at once)
songbot plan "<description>" [--instrumental] [--seed N] [--duration S] [--json]  the 5 Hz LM's plan
songbot status               queue depth, the engines, the slowest waiting user, the last errors
songbot --version            the installed version
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from bot.runner import AdapterFailed
from songbot import logs
from storage.contract.errors import ModelsMissing, StartupError
from storage.settings import Settings

MODEL_REPOS = {"main": "ACE-Step/Ace-Step1.5"}
CHAT_LOG = "songbot.log"
# Leaving the chat waits this long for the engine to stop cleanly (an idle one takes a fraction of a second;
# one in the middle of a song finishes storing what it encoded and gives its jobs back), then kills it: its
# encode processes die with it and the supervisor gives its jobs back, so they run at the next start.
CHAT_STOP_GRACE_S = 10.0
# The commands that keep people's data (database, audio, log): everything they create is owner-only.
SERVICE_COMMANDS = ("run", "chat", "engine", "bot")
PRIVATE_UMASK = 0o077

log = logging.getLogger("songbot")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand, each with a description for its --help."""
    from engine.acestep.lm.cli import build_parser as plan_arguments

    parser = argparse.ArgumentParser(prog="songbot", description="Make music in chats with ACE-Step 1.5.")
    parser.add_argument("--version", action="version", version=f"songbot {installed_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add(
        commands,
        "run",
        "Run the engine and the bots whose tokens are set",
        "The engine is a supervised child process; with no token set, this is the local console chat.",
    )
    add(
        commands,
        "chat",
        "Chat in this terminal with the same commands as the bots",
        "The engine runs as a child process; the log goes to $SONGBOT_DATA_DIR/songbot.log. /help lists the "
        "commands, /quit or Ctrl-C leaves.",
    )
    add(commands, "engine", "Run the engine process alone", "It claims jobs from the queue and makes the songs.")
    add(commands, "bot", "Run the bot process alone", "The bots whose tokens are set, and the delivery of results.")
    add(
        commands,
        "status",
        "Show the queue, the engines, the slowest waiting user and the last errors",
        "One screen for operators, read from the database (DATABASE_URL).",
    )
    models = add(commands, "models", "Check, write or download the ACE-Step checkpoints").add_subparsers(
        dest="models_command", required=True, metavar="ACTION"
    )
    check = add(
        models,
        "check",
        "List missing checkpoint files and the optional planner LM",
        "Exits 0 only when the set the engine needs is complete; the 5 Hz planner LM is optional.",
    )
    check.add_argument("dir", nargs="?", type=Path, help="the model folder (default: $MODEL_DIR)")
    tiny = add(
        models, "make-tiny", "Write a tiny random checkpoint set", "In the official layout, for tests and demos."
    )
    tiny.add_argument("dir", type=Path, help="the folder to write")
    download = add(
        models,
        "download",
        "Download the official checkpoints",
        "From the Hugging Face repository ACE-Step/Ace-Step1.5 (the planner LM acestep-5Hz-lm-1.7B included).",
    )
    download.add_argument("dir", nargs="?", type=Path, help="the model folder (default: $MODEL_DIR)")
    # The arguments come from the plan command's own parser (engine/acestep/lm/cli.py), so --help lists them.
    add(
        commands,
        "plan",
        "Print the planner LM's plan for a description",
        "Caption, lyrics, metadata and the number of audio codes the 5 Hz LM writes.",
        parents=[plan_arguments()],
        add_help=False,
    )
    discord = add(commands, "discord", "Discord tools", "sync registers the bot's slash commands.").add_subparsers(
        dest="discord_command", required=True, metavar="ACTION"
    )
    sync = add(
        discord,
        "sync",
        "Register the slash commands with Discord",
        "Globally (they may take up to an hour to show; Discord caps creates per day) or, with --guild, "
        "in one guild at once.",
    )
    sync.add_argument("--guild", type=int, help="a guild id: its commands update at once")
    return parser


def installed_version() -> str:
    """The version of the installed package (pyproject.toml's), or `unknown` when run from an uninstalled copy."""
    try:
        return metadata.version("songbot")
    except metadata.PackageNotFoundError:
        return "unknown"


def add(
    commands: argparse._SubParsersAction, name: str, summary: str, details: str = "", **kwargs: Any
) -> argparse.ArgumentParser:
    """A subcommand: `summary` in the parent's --help, `summary` and `details` in its own."""
    return commands.add_parser(name, help=summary, description=f"{summary}. {details}".strip(), **kwargs)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command == "plan":
        args.argv = argv[1:]  # "plan" is the first word: the top level takes no options but --help
    if args.command in SERVICE_COMMANDS:
        os.umask(PRIVATE_UMASK)  # the database, the audio and the log are their owner's alone
    settings = Settings()
    logs.configure(settings.log_level, secrets=settings.secrets())
    try:
        return dispatch(args, settings)
    except (ModelsMissing, AdapterFailed, StartupError) as error:
        print(error.user_message, file=sys.stderr)
        return 2
    except (OperationalError, InterfaceError) as error:  # at start: the database is not there to use
        log.debug("database unreachable at start", exc_info=True)
        print(database_unreachable(settings, error), file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before a command set up its own handling: a deliberate stop too
        return 0


def database_unreachable(settings: Settings, error: BaseException) -> str:
    """The one sentence for a command started while the database does not answer (no password shown)."""
    where = make_url(settings.db_url).render_as_string(hide_password=True)
    return (
        f"The database at {where} does not answer ({type(error).__name__}); "
        "check DATABASE_URL and that the database server is running."
    )


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen subcommand."""
    if args.command == "engine":
        from engine.main import run_engine

        return run_engine(settings)
    if args.command == "models":
        return models_command(args, settings)
    if args.command == "status":
        return show_status(settings)
    if args.command == "plan":
        from engine.acestep.lm.cli import plan_main

        return plan_main(args.argv)
    if args.command == "discord":
        return discord_sync(settings, args.guild)
    if args.command == "chat":
        return asyncio.run(run_chat(settings, with_engine=True))
    if args.command == "bot":
        return asyncio.run(run_service(settings, with_engine=False))
    return asyncio.run(run_service(settings, with_engine=True))


async def run_chat(settings: Settings, with_engine: bool) -> int:
    """The console chat over stdin/stdout, with the engine as a supervised child process.

    The log (this process's and the engine's, library notices and progress included) goes to
    `$SONGBOT_DATA_DIR/songbot.log`, so the terminal shows only the chat. Ctrl-C or SIGTERM leave
    at once: exit status 130 for Ctrl-C, 0 otherwise.
    """
    from bot.console.repl import ConsoleChat, stdin_lines
    from bot.core.delivery import DeliveryLoop
    from bot.core.service import SongService
    from bot.runner import start_bot_monitor
    from songbot.checks import song_checks
    from songbot.engines import EngineGroup

    # With the engine, its start-up errors would only reach the log: say them here.
    backend = active_backend(settings) if with_engine else None
    log_path = (settings.data_dir / CHAT_LOG).resolve()
    logs.configure(settings.log_level, secrets=settings.secrets(), path=log_path)
    logs.native_notes_to(log_path)  # libmpg123's notes on a broken upload would print over the chat
    service = SongService.from_settings(settings, song_checks=song_checks(settings), backend=backend)
    monitor = start_bot_monitor(settings, service)
    chat = ConsoleChat(service, DeliveryLoop(service), log_path=log_path)

    def leave(signum: int) -> None:
        log.info("leaving the chat on signal", extra={"signal": signum})
        chat.quit()

    def engine_exited(code: int) -> None:
        chat.notice(f"⚠️ The engine stopped (exit status {code}) and is being restarted; {log_path} says why.")

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, leave, signum)
    supervisor = EngineGroup.from_settings(settings, output=log_path, on_exit=engine_exited) if with_engine else None
    if supervisor:
        supervisor.start()
    try:
        await chat.run(stdin_lines(), interactive=sys.stdin.isatty())
    finally:
        if supervisor:
            await supervisor.stop(grace_s=CHAT_STOP_GRACE_S)
        if monitor:
            monitor.stop()
    # Ctrl-C is how a person stops the chat: a deliberate stop, so no error status (`make run` stays quiet).
    return 0


async def run_service(settings: Settings, with_engine: bool) -> int:
    """The bots whose tokens are set (or the console chat), and optionally the engine."""
    from bot.core.service import SongService
    from bot.runner import configured_platforms, run_bot, start_bot_monitor
    from songbot.checks import song_checks
    from songbot.engines import EngineGroup

    if not configured_platforms(settings):
        print("No TELEGRAM_TOKEN or DISCORD_TOKEN is set: starting the local console chat.", file=sys.stderr)
        return await run_chat(settings, with_engine)
    backend = active_backend(settings) if with_engine else None
    service = SongService.from_settings(settings, song_checks=song_checks(settings), backend=backend)
    monitor = start_bot_monitor(settings, service)
    supervisor = EngineGroup.from_settings(settings) if with_engine else None
    if supervisor:
        supervisor.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signum, stop.set)
    try:
        await run_bot(settings, stop, service)
    finally:
        if supervisor:
            await supervisor.stop()
        if monitor:
            monitor.stop()
    return 0


def active_backend(settings: Settings) -> str:
    """The backend the engine child will load (ENGINE_BACKEND against MODEL_DIR), for the welcome line and /help.

    Raises:
        ModelsMissing: the engine could not start (said here, before the bots start).
    """
    from engine.backends import choose_backend

    return choose_backend(settings.engine_backend, settings.model_dir)


def show_status(settings: Settings) -> int:
    """`songbot status`: print the operators' screen."""
    from migrations import upgrade
    from songbot.status import status_text
    from storage.db import make_engine, utcnow
    from storage.ops.overview import Overview

    missing = missing_database(settings)
    if missing is not None:  # a read-only command makes no data folder of its own
        print(missing, file=sys.stderr)
        return 1
    db = make_engine(settings.db_url)
    try:
        upgrade(db)
        print(status_text(Overview(db), utcnow(), settings.engine_lease_s, settings.secrets()))
        if not settings.database_url:
            print(f"Data folder: {settings.data_dir.resolve()}")
    except Exception as error:  # one sentence instead of a traceback (which goes to the debug log)
        log.debug("status failed", exc_info=True)
        print(f"Could not read the database ({type(error).__name__}); check DATABASE_URL.", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    return 0


def missing_database(settings: Settings) -> str | None:
    """The sentence for `status` run where no SQLite database is (SONGBOT_DATA_DIR is relative to the folder).

    Returns None when the database is a server (DATABASE_URL) or the file exists.
    """
    if settings.database_url:
        return None
    path = (settings.data_dir / "songbot.db").resolve()
    if path.is_file():
        return None
    return (
        f"There is no songbot database at {path}; run this in the folder you run songbot in, "
        "or set SONGBOT_DATA_DIR (or DATABASE_URL) to where it is."
    )


def discord_sync(settings: Settings, guild: int | None) -> int:
    """`songbot discord sync`: one line on success, one sentence on failure (the traceback goes to the log)."""
    if settings.discord_token is None:
        print(
            "DISCORD_TOKEN is not set; put the bot's token in .env (see .env.example) and run this again.",
            file=sys.stderr,
        )
        return 2
    from bot.discord.adapter import sync_commands

    logging.getLogger("discord.client").setLevel(logging.ERROR)  # voice-library notices: not for this command
    try:
        count = asyncio.run(sync_commands(settings, guild))
    except Exception as error:  # every failure becomes one sentence
        log.debug("discord sync failed", exc_info=True)
        print(discord_failure(error, settings, guild), file=sys.stderr)
        return 1
    print(
        f"Synced {count} commands "
        + (f"to guild {guild}." if guild else "globally (they may take up to an hour to show).")
    )
    return 0


def discord_failure(error: Exception, settings: Settings, guild: int | None) -> str:
    """The one sentence for a failed `discord sync`."""
    import aiohttp
    import discord

    if isinstance(error, discord.LoginFailure):
        return "Discord refused the token in DISCORD_TOKEN; copy it again from the Developer Portal (Bot → Token)."
    if isinstance(error, discord.Forbidden):
        where = f"guild {guild}" if guild else "this application"
        return f"Discord refused to register commands in {where}; invite the bot with the applications.commands scope."
    if isinstance(error, discord.HTTPException) and error.status == 429:
        return "Discord limits how often commands are registered; try again later (or use --guild ID)."
    if isinstance(error, discord.HTTPException):
        return f"Discord answered {error.status} ({error.text or 'no reason given'}); try again later."
    if isinstance(error, aiohttp.ClientError | OSError | TimeoutError):
        return f"Could not reach Discord at {settings.discord_api_base_url}; check the network and try again."
    return f"Could not register the commands ({type(error).__name__}); run with LOG_LEVEL=DEBUG to see why."


def models_command(args: argparse.Namespace, settings: Settings) -> int:
    """`songbot models check|make-tiny|download`."""
    model_dir: Path = args.dir or settings.model_dir
    if args.models_command == "check":
        return check_models(model_dir, settings.lm_model)
    if args.models_command == "make-tiny":
        from engine.acestep.tiny import make_tiny

        make_tiny(model_dir)
        print(f"Wrote a tiny random checkpoint set, and the style loras/demo, to {model_dir.resolve()}")
        return 0
    return download_models(model_dir, settings.lm_model)


def check_models(model_dir: Path, lm_model: str) -> int:
    """Print what is missing and which planner LM is there; exit 0 only when the required set is complete."""
    try:
        from engine.acestep.checkpoints import missing_files
        from engine.acestep.lm.layout import find_lm
    except ImportError:
        print("The ACE-Step engine's packages are not installed: pip install -e '.[acestep]'", file=sys.stderr)
        return 2
    missing = missing_files(model_dir)
    if missing:
        print(f"{model_dir}: missing {len(missing)} files:")
        for name in missing:
            print(f"  {name}")
    else:
        print(f"{model_dir}: complete checkpoint set.")
    print(planner_line(model_dir, lm_model, find_lm(model_dir, lm_model) or find_lm(model_dir)))
    if missing:
        print(f"Download them with: songbot models download {model_dir}")
        return 1
    return 0


def planner_line(model_dir: Path, lm_model: str, found: Path | None) -> str:
    """The line about the optional 5 Hz planner LM: which one the engine will load, or none."""
    if found is None:
        return (
            f"Planner LM (optional): none in {model_dir}, so songs are made from the description alone, "
            f"without LM-written lyrics and metadata; `songbot models download` fetches acestep-5Hz-lm-1.7B."
        )
    if found.name != lm_model:
        return f"Planner LM (optional): {found.name} (LM_MODEL={lm_model} is not there, so the engine loads this one)."
    return f"Planner LM (optional): {found.name}."


def download_models(model_dir: Path, lm_model: str) -> int:
    """Fetch the main checkpoint repository into `model_dir` (needs internet access)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        print("Downloading needs huggingface_hub: pip install -e '.[acestep]'", file=sys.stderr)
        return 2
    try:
        snapshot_download(MODEL_REPOS["main"], local_dir=str(model_dir))
    except Exception as error:  # noqa: BLE001 - network and hub errors all mean "could not download"
        print(
            f"Could not download the checkpoints ({type(error).__name__}); check the network and try again.",
            file=sys.stderr,
        )
        return 1
    return check_models(model_dir, lm_model)


if __name__ == "__main__":
    sys.exit(main())
