"""Tiled VAE encode and decode agree with one-shot calls."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch

from engine.acestep.vae import FastSnake, Vae, _spans, fold_weight_norm


@pytest.fixture(scope="module")
def vae(tiny_set: Path) -> Vae:
    return Vae.load(tiny_set / "vae", torch.device("cpu"), torch.float32)


def test_geometry_is_25_frames_per_second(vae: Vae) -> None:
    assert vae.hop == 1920 and vae.sample_rate // vae.hop == 25


def test_tiled_decode_equals_one_shot_decode(vae: Vae) -> None:
    vae.decode_tile = (48, 16)  # several tiles on a short input, with the production overlap
    latents = torch.randn(generator=torch.Generator().manual_seed(1), size=(8, 100))
    tiled = vae.decode(latents)
    with torch.no_grad():
        whole = vae.model.decode(latents[None]).sample[0]
    assert tiled.shape == (2, 100 * 1920)
    torch.testing.assert_close(tiled, whole, atol=1e-6, rtol=1e-5)


def test_sixteen_frames_of_overlap_are_needed_and_enough(vae: Vae) -> None:
    latents = torch.randn(generator=torch.Generator().manual_seed(5), size=(8, 120))
    with torch.no_grad():
        whole = vae.model.decode(latents[None]).sample[0]
    errors = {}
    for overlap in (2, 16):
        vae.decode_tile = (40 + 2 * overlap, overlap)
        errors[overlap] = float((vae.decode(latents) - whole).abs().max())
    assert errors[16] < 1e-6 < errors[2]


def test_every_tile_has_one_width_and_covers_the_song_once() -> None:
    for frames in (100, 512, 513, 4500, 4501):
        spans = _spans(frames, 512, 16)
        assert {hi - lo for _, _, lo, hi in spans} == {min(frames, 512)}
        assert spans[0][0] == 0 and spans[-1][1] == frames
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        assert all(lo == 0 or s - lo >= 16 for s, _, lo, _ in spans)
        assert all(hi == frames or hi - e >= 16 for _, e, _, hi in spans)


def test_folded_weights_and_fast_snake_decode_like_diffusers(tiny_set: Path) -> None:
    from diffusers import AutoencoderOobleck

    reference = AutoencoderOobleck.from_pretrained(str(tiny_set / "vae")).eval()
    fast = Vae.load(tiny_set / "vae", torch.device("cpu"), torch.float32)
    assert fold_weight_norm(fast.model) == 0  # already folded: no weight_g / weight_v left
    assert not any(hasattr(m, "weight_g") for m in fast.model.modules())
    assert any(isinstance(m, FastSnake) for m in fast.model.modules())
    assert not any(type(m).__name__ == "Snake1d" for m in fast.model.modules())
    latents = torch.randn(generator=torch.Generator().manual_seed(6), size=(1, 8, 60))
    with torch.no_grad():
        expected = reference.decode(latents).sample
        got = fast.model.decode(latents).sample
        expected_posterior = reference.encode(expected).latent_dist.mean
        got_posterior = fast.model.encode(expected).latent_dist.mean
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(got_posterior, expected_posterior, atol=1e-6, rtol=1e-5)


def test_tiled_encode_equals_one_shot_encode(vae: Vae) -> None:
    vae.encode_tile = (40, 10)
    audio = 0.3 * torch.randn(generator=torch.Generator().manual_seed(2), size=(2, 50 * 1920 + 77))
    mean, std = vae.posterior(audio)
    with torch.no_grad():
        dist = vae.model.encode(torch.nn.functional.pad(audio, (0, 1920 - 77))[None]).latent_dist
    assert mean.shape == (8, 51)
    torch.testing.assert_close(mean, dist.mean[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(std, dist.std[0], atol=1e-5, rtol=1e-4)


def test_encode_draws_from_the_tracks_own_generator(vae: Vae) -> None:
    audio = 0.3 * torch.randn(generator=torch.Generator().manual_seed(3), size=(2, 12 * 1920))
    first = vae.encode(audio, torch.Generator().manual_seed(9))
    again = vae.encode(audio, torch.Generator().manual_seed(9))
    other = vae.encode(audio, torch.Generator().manual_seed(10))
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_decoding_songs_together_equals_decoding_each_alone(vae: Vae) -> None:
    vae.decode_tile, vae.tiles_per_call = (40, 8), 3
    gen = torch.Generator().manual_seed(4)
    songs = [torch.randn(8, 70, generator=gen), torch.randn(8, 45, generator=gen)]
    together = vae.decode_many(songs)
    for latents, wave in zip(songs, together, strict=True):
        torch.testing.assert_close(wave, vae.decode(latents), atol=1e-5, rtol=1e-4)
        assert wave.shape == (2, latents.shape[1] * 1920)
