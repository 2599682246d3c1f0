"""One supervised engine per device (`songbot run`, `songbot chat` with ENGINE_DEVICES=cuda:0,cuda:1,…).

Each child is a `songbot.supervisor.EngineSupervisor` (restarted with back-off when it dies) with
its own ENGINE_DEVICE and ENGINE_METRICS_PORT (the i-th device: the port + i); everything else it
inherits. With ENGINE_DEVICES empty there is one engine, on ENGINE_DEVICE.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping
from pathlib import Path

from songbot.supervisor import STOP_GRACE_S, EngineSupervisor, lease_releaser
from storage.settings import Settings


def engine_environments(settings: Settings, base: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """The environment of each engine child: one per device of ENGINE_DEVICES (one engine when it is empty)."""
    devices: tuple[str | None, ...] = settings.engine_devices or (None,)
    environments = []
    for index, device in enumerate(devices):
        env = dict(os.environ if base is None else base)
        env.pop("ENGINE_DEVICES", None)
        if device is not None:
            env["ENGINE_DEVICE"] = device
        port = settings.engine_metrics_port_of(index)
        if port is not None:
            env["ENGINE_METRICS_PORT"] = str(port)
        environments.append(env)
    return environments


class EngineGroup:
    """One supervised engine per device."""

    def __init__(self, supervisors: list[EngineSupervisor]) -> None:
        self.supervisors = supervisors

    @classmethod
    def from_settings(
        cls, settings: Settings, output: Path | None = None, on_exit: Callable[[int], None] | None = None
    ) -> EngineGroup:
        """A supervisor for each device of ENGINE_DEVICES (or the one engine of ENGINE_DEVICE)."""
        release = lease_releaser(settings.db_url)
        return cls(
            [
                EngineSupervisor(env=env, output=output, on_exit=on_exit, on_killed=release)
                for env in engine_environments(settings)
            ]
        )

    def start(self) -> None:
        """Start every engine."""
        for supervisor in self.supervisors:
            supervisor.start()

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop every engine at once (each releases its job)."""
        await asyncio.gather(*(supervisor.stop(grace_s) for supervisor in self.supervisors))
