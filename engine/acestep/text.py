"""The DiT's text side: the official caption and lyric prompt formats, and the Qwen3 text encoder.

The caption prompt runs through the whole Qwen3-Embedding model (last hidden state); the lyric
prompt only through its token-embedding table, as the official handler does. Both are tokenized
with the checkpoint's ``tokenizer.json``, whose post-processor appends ``<|endoftext|>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

import torch
from tokenizers import Tokenizer

TEXT2MUSIC_INSTRUCTION = "Fill the audio semantic mask based on the given conditions:"
COVER_INSTRUCTION = "Generate audio semantic tokens based on the given conditions:"
CAPTION_MAX_TOKENS = 256
LYRICS_MAX_TOKENS = 2048
INSTRUMENTAL_LYRICS = "[Instrumental]"


@dataclass(frozen=True)
class Metas:
    """The metadata lines of the caption prompt; None prints as ``N/A`` like the official default."""

    bpm: int | None = None
    time_signature: int | str | None = None
    key: str | None = None
    duration_s: float = 30.0


def format_metas(metas: Metas) -> str:
    """``- bpm: …`` lines; the duration is truncated to whole seconds, as upstream does."""

    def show(value: object) -> str:
        return "N/A" if value is None else str(value)

    return (
        f"- bpm: {show(metas.bpm)}\n"
        f"- timesignature: {show(metas.time_signature)}\n"
        f"- keyscale: {show(metas.key)}\n"
        f"- duration: {int(metas.duration_s)} seconds\n"
    )


def caption_prompt(instruction: str, caption: str, metas: Metas) -> str:
    """The official ``SFT_GEN_PROMPT`` text for the caption branch."""
    if not instruction.endswith(":"):
        instruction += ":"
    return f"# Instruction\n{instruction}\n\n# Caption\n{caption}\n\n# Metas\n{format_metas(metas)}<|endoftext|>\n"


def lyrics_prompt(lyrics: str, language: str) -> str:
    """The official lyric-branch text."""
    return f"# Languages\n{language}\n\n# Lyric\n{lyrics}<|endoftext|>"


def load_tokenizer(encoder_dir: Path) -> Tokenizer:
    """The text encoder's ``tokenizer.json`` (fast tokenizer; specials such as ``<|endoftext|>`` match)."""
    return Tokenizer.from_file(str(Path(encoder_dir) / "tokenizer.json"))


def encode_ids(tokenizer: Tokenizer, text: str, max_tokens: int) -> list[int]:
    """Token ids as the official ``text_tokenizer(text, truncation=True, max_length=...)`` gives them."""
    tokenizer.enable_truncation(max_tokens)
    try:
        return tokenizer.encode(text).ids
    finally:
        tokenizer.no_truncation()


def pad_ids(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists → (ids [B, L] int64, mask [B, L] bool)."""
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.int64)
    mask = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row, dtype=torch.int64)
        mask[i, : len(row)] = True
    return ids, mask


class TextEncoder:
    """Qwen3-Embedding-0.6B (through transformers, no remote code) plus its tokenizer."""

    def __init__(self, tokenizer: Tokenizer, model: torch.nn.Module, device: torch.device) -> None:
        self.tokenizer = tokenizer
        pad_id = tokenizer.token_to_id("<|endoftext|>")
        if pad_id is None:
            raise ValueError("The text encoder's tokenizer has no <|endoftext|> token.")
        self.pad_id: int = pad_id
        self.model = model.to(device).eval()
        self.device = device

    @classmethod
    def load(cls, encoder_dir: Path, device: torch.device, dtype: torch.dtype) -> TextEncoder:
        """The tokenizer and ``AutoModel.from_pretrained`` (a plain Qwen3Model; no remote code)."""
        from transformers import AutoModel  # heavy import, only when a real engine starts

        model = AutoModel.from_pretrained(str(encoder_dir), dtype=dtype)
        return cls(load_tokenizer(encoder_dir), model, device)

    @torch.no_grad()
    def captions(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Caption prompts → (last hidden states [B, L, D], mask [B, L]).

        Upstream passes no attention mask; the model is causal and the padding is on the right,
        so the valid positions come out the same with the mask we pass.
        """
        rows = [encode_ids(self.tokenizer, p, CAPTION_MAX_TOKENS) for p in prompts]
        ids, mask = pad_ids(rows, self.pad_id)
        out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device).long())
        return out.last_hidden_state, mask.to(self.device)

    @torch.no_grad()
    def lyrics(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Lyric prompts → (token embeddings [B, L, D], mask [B, L]); a table lookup only."""
        rows = [encode_ids(self.tokenizer, p, LYRICS_MAX_TOKENS) for p in prompts]
        ids, mask = pad_ids(rows, self.pad_id)
        embed = cast(torch.nn.Module, self.model.embed_tokens)
        return embed(ids.to(self.device)), mask.to(self.device)
