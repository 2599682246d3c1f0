"""The Oobleck VAE (diffusers ``AutoencoderOobleck``) with tiled encode and decode.

48 kHz stereo ↔ 25 latent frames/s × 64 channels (hop 1920). Tiles are decoded with an overlap
that is then discarded, so memory stays bounded for a 10-minute song and seams do not show.
"""

from __future__ import annotations

from pathlib import Path

import torch

DECODE_CHUNK_FRAMES = 512
DECODE_OVERLAP_FRAMES = 64
DECODE_TILES_PER_CALL = 8  # bounds decoder memory: 8 tiles of 512 frames ≈ 8 × 20 s of audio
ENCODE_CHUNK_FRAMES = 750  # 30 s
ENCODE_OVERLAP_FRAMES = 50  # 2 s


class Vae:
    """A loaded VAE and the two tiled directions."""

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
        if next(model.parameters()).dtype != dtype:
            model = model.to(dtype=dtype)
        self.model = model.to(device=device).eval()
        self.hop = int(torch.tensor(model.config.downsampling_ratios).prod())
        self.sample_rate = int(model.config.sampling_rate)
        self.device, self.dtype = device, dtype
        self.decode_tile = (DECODE_CHUNK_FRAMES, DECODE_OVERLAP_FRAMES)
        # Batched tiles fill a GPU; on a CPU they only thrash the cache (measured 2x slower), so one.
        self.tiles_per_call = DECODE_TILES_PER_CALL if device.type == "cuda" else 1
        self.encode_tile = (ENCODE_CHUNK_FRAMES, ENCODE_OVERLAP_FRAMES)

    @classmethod
    def load(cls, vae_dir: Path, device: torch.device, dtype: torch.dtype) -> Vae:
        """``AutoencoderOobleck.from_pretrained(vae_dir)`` (weight-norm g/v pairs are folded by diffusers)."""
        from diffusers import AutoencoderOobleck  # heavy import, only when a real engine starts

        return cls(AutoencoderOobleck.from_pretrained(str(vae_dir), torch_dtype=dtype), device, dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [64, T] → audio [2, T · hop] (float32, on the CPU), tile by tile."""
        return self.decode_many([latents])[0]

    @torch.no_grad()
    def decode_many(self, latents: list[torch.Tensor]) -> list[torch.Tensor]:
        """Decode several songs; equal-width tiles of all songs share calls, at most ``tiles_per_call`` each.

        Each tile is decoded with ``overlap`` extra frames on both sides, which are then discarded,
        so a song's audio does not depend (beyond float rounding) on which songs shared its calls.
        """
        chunk, overlap = self.decode_tile
        tiles = [(i, *span) for i, z in enumerate(latents) for span in _spans(z.shape[-1], chunk, overlap)]
        by_width: dict[int, list[tuple[int, int, int, int, int]]] = {}
        for tile in tiles:
            by_width.setdefault(tile[4] - tile[3], []).append(tile)
        pieces: dict[tuple[int, int], torch.Tensor] = {}
        for group in by_width.values():
            for first in range(0, len(group), self.tiles_per_call):
                part = group[first : first + self.tiles_per_call]
                windows = torch.stack([latents[i][:, lo:hi] for i, _, _, lo, hi in part])
                waves = self.model.decode(windows.to(self.device, self.dtype).contiguous()).sample.float().cpu()
                for wave, (i, start, end, lo, _) in zip(waves, part, strict=True):
                    pieces[(i, start)] = wave[:, (start - lo) * self.hop : (end - lo) * self.hop]
        return [
            torch.cat([pieces[(i, start)] for j, start, *_ in tiles if j == i], dim=-1) for i in range(len(latents))
        ]

    @torch.no_grad()
    def encode(self, audio: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Audio [2, samples] → latents [T, 64] drawn from the posterior with a seeded CPU generator.

        Upstream samples the posterior with the global RNG; we draw the same distribution
        (mean + std · ε) from the track's own generator so that a cover is reproducible.
        """
        mean, std = self.posterior(audio)
        latents = mean + std * torch.randn(mean.shape, generator=generator)
        return latents.T.contiguous()

    @torch.no_grad()
    def posterior(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio [2, samples] → posterior (mean, std), each [64, T] on the CPU, tile by tile."""
        pad = (-audio.shape[-1]) % self.hop
        audio = torch.nn.functional.pad(audio, (0, pad))
        frames = audio.shape[-1] // self.hop
        means, stds = [], []
        for start, end, lo, hi in _spans(frames, *self.encode_tile):
            window = audio[None, :, lo * self.hop : hi * self.hop].to(self.device, self.dtype).contiguous()
            dist = self.model.encode(window).latent_dist
            means.append(dist.mean[0, :, start - lo : end - lo].float().cpu())
            stds.append(dist.std[0, :, start - lo : end - lo].float().cpu())
        return torch.cat(means, dim=-1), torch.cat(stds, dim=-1)


def _spans(frames: int, chunk: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """Tiles over ``frames``: (start, end) kept, (lo, hi) computed, with ``overlap`` context each side."""
    core = chunk - 2 * overlap
    return [
        (start, min(start + core, frames), max(0, start - overlap), min(frames, start + core + overlap))
        for start in range(0, frames, core)
    ]
