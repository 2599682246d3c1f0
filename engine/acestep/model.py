"""The whole ACE-Step 1.5 DiT checkpoint as one module, with the official state-dict layout.

Key prefixes: ``decoder.*``, ``encoder.{text_projector,lyric_encoder,timbre_encoder}.*``,
``tokenizer.{audio_acoustic_proj,attention_pooler,quantizer}.*``, ``detokenizer.*`` and
``null_condition_emb`` (kept for a strict load; turbo sampling has no CFG and never reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

from engine.acestep.condition import ConditionEncoder
from engine.acestep.config import DitConfig
from engine.acestep.decoder import DiTDecoder
from engine.acestep.tokenizer import AudioTokenizer, Detokenizer


@dataclass
class Condition:
    """What the DiT is conditioned on for one sampling phase."""

    encoder_states: torch.Tensor  # [B, S, hidden]
    encoder_mask: torch.Tensor  # [B, S] bool
    context: torch.Tensor  # [B, T, 128]: source (or hints) | chunk mask


class AceStepDiT(nn.Module):
    """Condition encoder + DiT decoder + 5 Hz tokenizer/detokenizer."""

    def __init__(self, config: DitConfig) -> None:
        super().__init__()
        self.config = config
        self.decoder = DiTDecoder(config)
        self.encoder = ConditionEncoder(config)
        self.tokenizer = AudioTokenizer(config)
        self.detokenizer = Detokenizer(config)
        self.null_condition_emb = nn.Parameter(torch.zeros(1, 1, config.hidden_size))

    def tokenize(
        self, x: torch.Tensor, silence_latent: torch.Tensor, attention_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """25 Hz latents [B, T, 64] → (quantized [B, T5, hidden], indices [B, T5, 1], 5 Hz mask).

        A length that is not a multiple of the window is completed with the first frames of
        the silence latent, as upstream does.
        """
        pool = self.config.pool_window_size
        pad = (-x.shape[1]) % pool
        if pad:
            x = torch.cat([x, silence_latent[:1, :pad].to(x.dtype).expand(x.shape[0], -1, -1)], dim=1)
            attention_mask = F.pad(attention_mask, (0, pad))
        windows = x.view(x.shape[0], -1, pool, x.shape[-1])
        pooled_mask = F.max_pool1d(attention_mask.to(x.dtype).unsqueeze(1), pool, pool, ceil_mode=True).squeeze(1)
        quantized, indices = self.tokenizer(windows)
        return quantized, indices, pooled_mask

    def detokenize(self, quantized: torch.Tensor) -> torch.Tensor:
        """5 Hz quantized vectors → 25 Hz hints [B, 5 T5, 64]."""
        return self.detokenizer(quantized)

    def codes_to_hints(self, codes: torch.Tensor) -> torch.Tensor:
        """FSQ indices [B, T5] (e.g. from the 5 Hz LM) → 25 Hz hints [B, 5 T5, 64]."""
        dtype = self.detokenizer.proj_out.weight.dtype
        return self.detokenize(self.tokenizer.quantizer.codes_to_vectors(codes, dtype))

    def prepare_condition(
        self,
        text_hidden_states: torch.Tensor,
        text_attention_mask: torch.Tensor,
        lyric_hidden_states: torch.Tensor,
        lyric_attention_mask: torch.Tensor,
        refer_audio_acoustic_hidden_states_packed: torch.Tensor,
        refer_audio_order_mask: torch.Tensor,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor,
        silence_latent: torch.Tensor,
        src_latents: torch.Tensor,
        chunk_masks: torch.Tensor,
        is_covers: torch.Tensor,
        precomputed_lm_hints_25Hz: torch.Tensor | None = None,
    ) -> Condition:
        """The official ``prepare_condition``: encoder sequence and context latents.

        Where ``is_covers`` is set, the source channels of the context are replaced by the
        hints (precomputed, or ``detokenize(tokenize(hidden_states))``).
        """
        states, mask = self.encoder(
            text_hidden_states,
            text_attention_mask,
            lyric_hidden_states,
            lyric_attention_mask,
            refer_audio_acoustic_hidden_states_packed,
            refer_audio_order_mask,
        )
        length = src_latents.shape[1]
        if precomputed_lm_hints_25Hz is not None:
            hints = precomputed_lm_hints_25Hz[:, :length]
        else:
            hints = self.detokenize(self.tokenize(hidden_states, silence_latent, attention_mask)[0])[:, :length]
        source = torch.where(is_covers[:, None, None] > 0, hints, src_latents)
        context = torch.cat([source, chunk_masks.to(source.dtype)], dim=-1)
        return Condition(states, mask, context)


def load_dit(model_dir: Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> AceStepDiT:
    """Build the DiT from ``config.json`` and load ``model.safetensors`` with every key matched.

    Raises:
        RuntimeError: When a key is missing or unexpected (a different checkpoint layout).
    """
    model_dir = Path(model_dir)
    config = DitConfig.from_file(model_dir / "config.json")
    with torch.device("meta"):
        model = AceStepDiT(config)
    state = load_file(str(model_dir / "model.safetensors"), device=str(device))
    model.load_state_dict(state, strict=True, assign=True)
    _materialize_buffers(model, device)
    model = model.to(device=device, dtype=dtype)
    return model.eval().requires_grad_(False)


def _materialize_buffers(model: AceStepDiT, device: str | torch.device) -> None:
    """Rebuild the non-persistent FSQ buffers, which stayed on the meta device."""
    fsq = model.tokenizer.quantizer
    levels = torch.tensor(model.config.fsq_input_levels, dtype=torch.int64, device=device)
    fsq.levels = levels
    fsq.basis = torch.cumprod(torch.cat([levels.new_ones(1), levels[:-1]]), dim=0)


def load_silence_latent(model_dir: Path, device: str | torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``silence_latent.pt`` ([1, 64, frames]) as [1, frames, 64]."""
    latent = torch.load(Path(model_dir) / "silence_latent.pt", map_location="cpu", weights_only=True)
    return latent.transpose(1, 2).to(device=device, dtype=dtype).contiguous()
