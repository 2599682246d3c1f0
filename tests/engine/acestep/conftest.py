"""Shared fixtures: one tiny random checkpoint set per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from engine.acestep.tiny import make_tiny


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete tiny checkpoint set in the official layout (written once, read-only after)."""
    model_dir = tmp_path_factory.mktemp("acestep_tiny")
    make_tiny(model_dir, seed=0)
    return model_dir


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread, and the CI machine is shared; restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
