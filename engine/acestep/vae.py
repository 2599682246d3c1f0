"""The Oobleck VAE (diffusers ``AutoencoderOobleck``) with tiled encode and decode.

48 kHz stereo ↔ 25 latent frames/s × 64 channels (hop 1920). Tiles are decoded with an overlap
that is then discarded, so memory stays bounded for a 10-minute song and seams do not show.
"""

from __future__ import annotations

from pathlib import Path

import torch

DECODE_CHUNK_FRAMES = 512
DECODE_OVERLAP_FRAMES = 64
ENCODE_CHUNK_FRAMES = 750  # 30 s
ENCODE_OVERLAP_FRAMES = 50  # 2 s


class Vae:
    """A loaded VAE and the two tiled directions."""

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model.to(device=device, dtype=dtype).eval()
        self.hop = int(torch.tensor(model.config.downsampling_ratios).prod())
        self.sample_rate = int(model.config.sampling_rate)
        self.device, self.dtype = device, dtype
        self.decode_tile = (DECODE_CHUNK_FRAMES, DECODE_OVERLAP_FRAMES)
        self.encode_tile = (ENCODE_CHUNK_FRAMES, ENCODE_OVERLAP_FRAMES)

    @classmethod
    def load(cls, vae_dir: Path, device: torch.device, dtype: torch.dtype) -> Vae:
        """``AutoencoderOobleck.from_pretrained(vae_dir)`` (weight-norm g/v pairs are folded by diffusers)."""
        from diffusers import AutoencoderOobleck  # heavy import, only when a real engine starts

        return cls(AutoencoderOobleck.from_pretrained(str(vae_dir), torch_dtype=dtype), device, dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [64, T] → audio [2, T · hop] (float32, on the CPU), tile by tile."""
        frames = latents.shape[-1]
        chunk, overlap = self.decode_tile
        pieces = []
        for start in range(0, frames, chunk - 2 * overlap):
            end = min(start + chunk - 2 * overlap, frames)
            lo, hi = max(0, start - overlap), min(frames, end + overlap)
            window = latents[None, :, lo:hi].to(self.device, self.dtype).contiguous()
            wave = self.model.decode(window).sample[0].float().cpu()
            pieces.append(wave[:, (start - lo) * self.hop : (end - lo) * self.hop])
        return torch.cat(pieces, dim=-1)

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
        chunk, overlap = self.encode_tile
        means, stds = [], []
        for start in range(0, frames, chunk - 2 * overlap):
            end = min(start + chunk - 2 * overlap, frames)
            lo, hi = max(0, start - overlap), min(frames, end + overlap)
            window = audio[None, :, lo * self.hop : hi * self.hop].to(self.device, self.dtype).contiguous()
            dist = self.model.encode(window).latent_dist
            means.append(dist.mean[0, :, start - lo : end - lo].float().cpu())
            stds.append(dist.std[0, :, start - lo : end - lo].float().cpu())
        return torch.cat(means, dim=-1), torch.cat(stds, dim=-1)
