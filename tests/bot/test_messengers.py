"""Every platform's messenger offers the delivery loop all of `Messenger`, with the same parameters.

The adapters are registered where their type is not checked against the protocol, so a method one of
them lacks (Discord once had no `send_notice`) would only show when the delivery loop first needed it.
"""

from __future__ import annotations

import inspect

import pytest

from bot.console.repl import ConsoleMessenger
from bot.core.delivery import Messenger
from bot.discord.adapter import DiscordAdapter
from bot.discord.messenger import DiscordMessenger
from bot.telegram.adapter import TelegramAdapter

METHODS = sorted(name for name, value in vars(Messenger).items() if inspect.iscoroutinefunction(value))


def test_the_protocol_has_the_methods_the_loop_calls() -> None:
    assert {"show_status", "send_result", "send_error", "send_notice", "send_description", "send_answer"} <= set(
        METHODS
    )


@pytest.mark.parametrize("messenger", [ConsoleMessenger, DiscordAdapter, DiscordMessenger, TelegramAdapter])
@pytest.mark.parametrize("name", METHODS)
def test_each_messenger_has_each_method(messenger: type, name: str) -> None:
    method = getattr(messenger, name, None)
    assert method is not None and inspect.iscoroutinefunction(method), f"{messenger.__name__} lacks {name}"
    wanted = list(inspect.signature(getattr(Messenger, name)).parameters)
    assert list(inspect.signature(method).parameters)[: len(wanted)] == wanted
