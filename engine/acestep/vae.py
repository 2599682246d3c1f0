"""The Oobleck VAE (diffusers ``AutoencoderOobleck``) with tiled encode and decode, made fast at load.

48 kHz stereo ↔ 25 latent frames/s × 64 channels (hop 1920). Decoding is tiled so memory stays
bounded for a 10-minute song; each tile carries ``DECODE_OVERLAP_FRAMES`` of context on both sides,
which is then discarded. One latent frame reaches about ±8 frames of audio through the decoder's
convolutions, so 16 frames of context reproduce a whole-song decode up to float rounding.

At load (``Vae.__init__``) the module is rewritten for speed, without changing what it computes:

- weight norm is folded into plain weights: diffusers keeps ``weight_norm``'s forward pre-hooks,
  which recompute every convolution's weight (g · v / ‖v‖, 74 of them) on every call;
- each ``Snake1d`` becomes ``FastSnake``: exp(α) and 1 / (exp(β) + 1e-9) are computed once, and on
  CUDA the activation is one fused kernel (``torch.compile``), not five passes over the tensor;
- every tile has the same width (edge tiles are shifted inward rather than cut short), so cuDNN
  picks its algorithms once, and tiles of all songs in a batch share calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

log = logging.getLogger("songbot.engine")

DECODE_CHUNK_FRAMES = 512
DECODE_OVERLAP_FRAMES = 16  # twice the ±8-frame reach of one latent frame
DECODE_TILES_PER_CALL = 8  # bounds decoder memory: 8 tiles of 512 frames ≈ 8 × 20 s of audio
ENCODE_CHUNK_FRAMES = 750  # 30 s
ENCODE_OVERLAP_FRAMES = 50  # 2 s

SnakeFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def snake(x: torch.Tensor, alpha: torch.Tensor, inv_beta: torch.Tensor) -> torch.Tensor:
    """Snake: x + sin²(α·x) / β, with α and 1/β per channel ([1, C, 1]) already computed."""
    return torch.addcmul(x, inv_beta, torch.sin(alpha * x).square())


class FastSnake(nn.Module):
    """diffusers' ``Snake1d`` (log-scale α and β) with its constants computed once."""

    def __init__(self, original: nn.Module, dtype: torch.dtype, fn: SnakeFn = snake) -> None:
        super().__init__()
        alpha, beta = original.alpha.detach().float(), original.beta.detach().float()
        if getattr(original, "logscale", True):
            alpha, beta = alpha.exp(), beta.exp()
        self.register_buffer("alpha", alpha.to(dtype))
        self.register_buffer("inv_beta", (beta + 1e-9).reciprocal().to(dtype))
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the activation to [B, C, T]."""
        return self.fn(x, self.alpha, self.inv_beta)


def fold_weight_norm(model: nn.Module) -> int:
    """Replace every weight-normed weight by its value (old-style hooks or parametrizations); returns how many."""
    from torch.nn.utils import parametrize

    folded = 0
    for module in model.modules():
        if parametrize.is_parametrized(module, "weight"):
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
            folded += 1
        elif hasattr(module, "weight_g") and hasattr(module, "weight_v"):
            torch.nn.utils.remove_weight_norm(module)
            folded += 1
    return folded


def replace_snakes(model: nn.Module, dtype: torch.dtype, fn: SnakeFn = snake) -> int:
    """Swap each ``Snake1d`` for a ``FastSnake``; returns how many."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child).__name__ == "Snake1d":
                setattr(parent, name, FastSnake(child, dtype, fn))
                replaced += 1
    return replaced


def fused_snake(device: torch.device) -> SnakeFn:
    """One fused kernel on CUDA (``torch.compile``), the eager ``snake`` elsewhere or if compiling fails."""
    if device.type != "cuda":
        return snake
    try:
        compiled = torch.compile(snake, dynamic=True, fullgraph=True)
        probe = torch.randn(1, 4, 64, device=device, dtype=torch.bfloat16)
        ones = torch.ones(1, 4, 1, device=device, dtype=torch.bfloat16)
        torch.testing.assert_close(compiled(probe, ones, ones), snake(probe, ones, ones))
        return compiled  # type: ignore[no-any-return]
    except Exception as error:  # noqa: BLE001 - no Triton, no compiler: the eager path is correct
        log.warning("fused Snake unavailable, using the eager one: %s", error)
        return snake


class Vae:
    """A loaded VAE and the two tiled directions."""

    def __init__(self, model: nn.Module, device: torch.device, dtype: torch.dtype, fast: bool = True) -> None:
        if fast:
            fold_weight_norm(model)  # in the loaded precision, before any cast
            replace_snakes(model, dtype, fused_snake(device))
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
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one tile width: algorithms are chosen once

    @classmethod
    def load(cls, vae_dir: Path, device: torch.device, dtype: torch.dtype) -> Vae:
        """``AutoencoderOobleck.from_pretrained(vae_dir)`` in float32, folded, then cast to ``dtype``."""
        from diffusers import AutoencoderOobleck  # heavy import, only when a real engine starts

        return cls(AutoencoderOobleck.from_pretrained(str(vae_dir), torch_dtype=torch.float32), device, dtype)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [64, T] → audio [2, T · hop] (float32, on the CPU), tile by tile."""
        return self.decode_many([latents])[0]

    @torch.no_grad()
    def decode_many(self, latents: list[torch.Tensor], on_device: bool = False) -> list[torch.Tensor]:
        """Decode several songs; equal-width tiles of all songs share calls, at most ``tiles_per_call`` each.

        Each tile is decoded with context on both sides, which is then discarded, so a song's audio
        does not depend (beyond float rounding) on which songs shared its calls. Returns float32
        [2, T · hop] per song, on the CPU or (``on_device``) where the model runs.
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
                windows = torch.stack([latents[i][:, lo:hi].to(self.device, self.dtype) for i, _, _, lo, hi in part])
                waves = self.model.decode(windows.contiguous()).sample
                for wave, (i, start, end, lo, _) in zip(waves, part, strict=True):
                    pieces[(i, start)] = wave[:, (start - lo) * self.hop : (end - lo) * self.hop]
        songs = [
            torch.cat([pieces[(i, start)] for j, start, *_ in tiles if j == i], dim=-1).float()
            for i in range(len(latents))
        ]
        return songs if on_device else [song.cpu() for song in songs]

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
    """Tiles over ``frames``: (start, end) kept and (lo, hi) computed, at least ``overlap`` context each side.

    Every window is ``chunk`` wide (the whole song when shorter): at the song's edges the window
    is shifted inward, where it meets the true edge, rather than cut short.
    """
    if frames <= chunk:
        return [(0, frames, 0, frames)]
    core = chunk - 2 * overlap
    spans = []
    for start in range(0, frames, core):
        end = min(start + core, frames)
        lo = min(max(0, start - overlap), frames - chunk)
        spans.append((start, end, lo, lo + chunk))
    return spans
