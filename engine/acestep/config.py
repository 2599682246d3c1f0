"""The DiT configuration, read from the checkpoint's ``config.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

# The VAE's latent rate: 48 kHz audio in frames of 1920 samples (the one definition; the pipeline and
# the edits count frames with it).
FRAMES_PER_SECOND = 25


@dataclass(frozen=True)
class DitConfig:
    """Geometry of the ACE-Step 1.5 DiT stack (defaults are the 2B turbo model).

    Only the fields the modelling code reads are kept; other keys of
    ``config.json`` (``auto_map``, ``timbre_fix_frame``...) are ignored.
    """

    hidden_size: int = 2048
    intermediate_size: int = 6144
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_key_value_heads: int = 8
    head_dim: int = 128
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    use_sliding_window: bool = True
    sliding_window: int = 128
    layer_types: tuple[str, ...] = field(default_factory=tuple)
    num_lyric_encoder_hidden_layers: int = 8
    num_timbre_encoder_hidden_layers: int = 4
    num_attention_pooler_hidden_layers: int = 2
    text_hidden_dim: int = 1024
    timbre_hidden_dim: int = 64
    audio_acoustic_hidden_dim: int = 64
    in_channels: int = 192
    patch_size: int = 2
    pool_window_size: int = 5
    fsq_dim: int = 2048
    fsq_input_levels: tuple[int, ...] = (8, 8, 8, 5, 5, 5)
    fsq_input_num_quantizers: int = 1
    timbre_fix_frame: int = 750
    model_version: str = "turbo"

    def __post_init__(self) -> None:
        if not self.layer_types:
            # Upstream's default: even layers sliding, odd layers full.
            kinds = ("sliding_attention", "full_attention")
            object.__setattr__(self, "layer_types", tuple(kinds[i % 2] for i in range(self.num_hidden_layers)))
        if self.fsq_input_num_quantizers != 1:
            raise ValueError("Only one FSQ quantizer is supported (as in every official checkpoint).")

    def is_sliding(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` (of any stack: encoders index the same list) is windowed."""
        return self.use_sliding_window and self.layer_types[layer_idx] == "sliding_attention"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> DitConfig:
        """Build from a ``config.json`` dict, ignoring keys the model does not use."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in raw.items() if k in known}
        for key in ("layer_types", "fsq_input_levels"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: Path) -> DitConfig:
        """Read a ``config.json``."""
        return cls.from_dict(json.loads(Path(path).read_text()))
