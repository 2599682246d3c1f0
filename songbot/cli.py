"""The `songbot` command.

songbot run                  the engine (supervised child) + the bots whose tokens are set,
or the console chat when none is
songbot chat                 the local console chat (the engine runs as a child process)
songbot engine               the engine process alone
songbot bot                  the bot process alone
songbot models check [DIR]   which checkpoint files are present or missing
songbot models make-tiny DIR a tiny random checkpoint set in the official layout (for tests)
songbot models download DIR  the official checkpoints from Hugging Face
songbot discord sync [--guild ID]  register the Discord commands (globally, or in one guild at once)
songbot plan "<description>" [--instrumental] [--seed N] [--duration S] [--json]  the 5 Hz LM's plan
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from bot.runner import AdapterFailed
from songbot import logs
from storage.errors import ModelsMissing
from storage.settings import Settings

MODEL_REPOS = {"main": "ACE-Step/Ace-Step1.5"}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="songbot", description="Make music in chats with ACE-Step 1.5.")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="engine + bots (or the console chat when no token is set)")
    commands.add_parser("chat", help="the local console chat, with the engine as a child process")
    commands.add_parser("engine", help="the engine process alone")
    commands.add_parser("bot", help="the bot process alone")
    models = commands.add_parser("models", help="checkpoint tools").add_subparsers(dest="models_command",
                                                                                   required=True)
    check = models.add_parser("check", help="list present and missing checkpoint files")
    check.add_argument("dir", nargs="?", type=Path)
    tiny = models.add_parser("make-tiny", help="write a tiny random checkpoint set (tests, demos)")
    tiny.add_argument("dir", type=Path)
    download = models.add_parser("download", help="download the official checkpoints")
    download.add_argument("dir", nargs="?", type=Path)
    plan = commands.add_parser("plan", add_help=False,
                               help='"<description>" [--instrumental] [--seed N] [--duration S] [--json]: the LM plan')
    plan.add_argument("argv", nargs=argparse.REMAINDER)
    discord = commands.add_parser("discord", help="Discord tools").add_subparsers(dest="discord_command",
                                                                                 required=True)
    sync = discord.add_parser("sync", help="register the slash commands (Discord caps creates per day)")
    sync.add_argument("--guild", type=int, help="a guild id: its commands update at once")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_level, secrets=settings.secrets())
    try:
        return dispatch(args, settings)
    except (ModelsMissing, AdapterFailed) as error:
        print(error.user_message, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def dispatch(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen subcommand."""
    if args.command == "engine":
        from engine.main import run_engine

        return run_engine(settings)
    if args.command == "models":
        return models_command(args, settings)
    if args.command == "plan":
        from engine.acestep.lm.cli import plan_main

        return plan_main(args.argv)
    if args.command == "discord":
        from bot.discord.adapter import sync_commands

        count = asyncio.run(sync_commands(settings, args.guild))
        print(f"Synced {count} commands " + (f"to guild {args.guild}." if args.guild else "globally."))
        return 0
    if args.command == "chat":
        return asyncio.run(run_chat(settings, with_engine=True))
    if args.command == "bot":
        return asyncio.run(run_service(settings, with_engine=False))
    return asyncio.run(run_service(settings, with_engine=True))


async def run_chat(settings: Settings, with_engine: bool) -> int:
    """The console chat over stdin/stdout, with the engine as a supervised child process."""
    from bot.console.repl import ConsoleChat, stdin_lines
    from bot.core.delivery import DeliveryLoop
    from bot.core.service import SongService
    from songbot.checks import song_checks
    from songbot.supervisor import EngineSupervisor

    service = SongService.from_settings(settings, song_checks=song_checks(settings))
    supervisor = EngineSupervisor() if with_engine else None
    if supervisor:
        supervisor.start()
    try:
        chat = ConsoleChat(service, DeliveryLoop(service))
        await chat.run(stdin_lines(), interactive=sys.stdin.isatty())
    finally:
        if supervisor:
            await supervisor.stop()
    return 0


async def run_service(settings: Settings, with_engine: bool) -> int:
    """The bots whose tokens are set (or the console chat), and optionally the engine."""
    from bot.core.service import SongService
    from bot.runner import configured_platforms, run_bot
    from songbot.checks import song_checks
    from songbot.supervisor import EngineSupervisor

    if not configured_platforms(settings):
        print("No TELEGRAM_TOKEN or DISCORD_TOKEN is set: starting the local console chat.", file=sys.stderr)
        return await run_chat(settings, with_engine)
    service = SongService.from_settings(settings, song_checks=song_checks(settings))
    supervisor = EngineSupervisor() if with_engine else None
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
    return 0


def models_command(args: argparse.Namespace, settings: Settings) -> int:
    """`songbot models check|make-tiny|download`."""
    model_dir: Path = args.dir or settings.model_dir
    if args.models_command == "check":
        return check_models(model_dir)
    if args.models_command == "make-tiny":
        from engine.acestep.tiny import make_tiny

        make_tiny(model_dir)
        print(f"Wrote a tiny random checkpoint set to {model_dir.resolve()}")
        return 0
    return download_models(model_dir)


def check_models(model_dir: Path) -> int:
    """Print what is missing; exit 0 only when the set is complete."""
    try:
        from engine.acestep.checkpoints import missing_files
    except ImportError:
        print("The ACE-Step engine's packages are not installed: pip install -e '.[acestep]'", file=sys.stderr)
        return 2
    missing = missing_files(model_dir)
    if not missing:
        print(f"{model_dir}: complete checkpoint set.")
        return 0
    print(f"{model_dir}: missing {len(missing)} files:")
    for name in missing:
        print(f"  {name}")
    print(f"Download them with: songbot models download {model_dir}")
    return 1


def download_models(model_dir: Path) -> int:
    """Fetch the main checkpoint repository into `model_dir` (needs internet access)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        print("Downloading needs huggingface_hub: pip install -e '.[acestep]'", file=sys.stderr)
        return 2
    try:
        snapshot_download(MODEL_REPOS["main"], local_dir=str(model_dir))
    except Exception as error:  # noqa: BLE001 - network and hub errors all mean "could not download"
        print(f"Could not download the checkpoints ({type(error).__name__}); check the network and try again.",
              file=sys.stderr)
        return 1
    return check_models(model_dir)


if __name__ == "__main__":
    sys.exit(main())
