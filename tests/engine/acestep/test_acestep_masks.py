"""Our masked batch path equals upstream's unmasked single-song path (kit weights and inputs).

Upstream ignores padding inside the DiT, so a padded song differs from the same song alone. Our
pipeline passes key-padding masks; this checks that the masked, padded batch gives each song exactly
what upstream computes for that song alone with its padding trimmed.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from engine.acestep.model import AceStepDiT, load_dit
from engine.acestep.sampler import Phase, cover_phase_plan, sample, turbo_timesteps
from tests.helpers import DIT_KIT

KIT = DIT_KIT


@pytest.fixture(scope="module")
def model() -> AceStepDiT:
    assert (KIT / "model.safetensors").is_file(), f"conformance kit not found at {KIT}"
    return load_dit(KIT)


def _noise(seeds: list[int], length: int) -> torch.Tensor:
    return torch.cat([torch.randn(1, length, 64, generator=torch.Generator().manual_seed(s)) for s in seeds])


def _upstream_alone(model: AceStepDiT, t: dict[str, torch.Tensor], item: int, seed: int) -> torch.Tensor:
    """Upstream semantics (no masks anywhere in the DiT) for one item with its padding trimmed."""
    n_text, n_lyric = int(t["in.text_attention_mask"][item].sum()), int(t["in.lyric_attention_mask"][item].sum())
    refs = t["in.refer_audio_acoustic_hidden_states_packed"][t["in.refer_audio_order_mask"] == item]
    src = t["in.src_latents"][item : item + 1]
    cond = model.prepare_condition(
        text_hidden_states=t["in.text_hidden_states"][item : item + 1, :n_text],
        text_attention_mask=t["in.text_attention_mask"][item : item + 1, :n_text],
        lyric_hidden_states=t["in.lyric_hidden_states"][item : item + 1, :n_lyric],
        lyric_attention_mask=t["in.lyric_attention_mask"][item : item + 1, :n_lyric],
        refer_audio_acoustic_hidden_states_packed=refs,
        refer_audio_order_mask=torch.zeros(refs.shape[0], dtype=torch.int64),
        hidden_states=src,
        attention_mask=torch.ones(src.shape[:2]),
        silence_latent=t["in.silence_latent"],
        src_latents=src,
        chunk_masks=t["in.chunk_masks"][item : item + 1],
        is_covers=t["in.is_covers"][item : item + 1],
    )
    phase = Phase(model.decoder.cross_kv(cond.encoder_states), cond.context, None)
    return sample(model.decoder, _noise([seed], src.shape[1]), [phase], [[0]] * 8, turbo_timesteps(3.0))[0]


def _ours_batched(model: AceStepDiT, t: dict[str, torch.Tensor], seeds: list[int]) -> torch.Tensor:
    """The same padded batch, with key-padding masks passed to the DiT."""
    src = t["in.src_latents"]
    cond = model.prepare_condition(
        **{k[3:]: v for k, v in t.items() if k.startswith("in.") and "non_cover" not in k},
        hidden_states=src,
        attention_mask=torch.ones(src.shape[:2]),
    )
    phase = Phase(model.decoder.cross_kv(cond.encoder_states), cond.context, cond.encoder_mask)
    frames = torch.ones(src.shape[:2], dtype=torch.bool)
    plan = cover_phase_plan(8, [1.0] * len(seeds))
    return sample(model.decoder, _noise(seeds, src.shape[1]), [phase], plan, turbo_timesteps(3.0), frames)


def test_masked_batch_equals_upstream_song_alone(model: AceStepDiT) -> None:
    tensors = load_file(str(KIT / "case_generate_t2m.safetensors"))
    seeds = [1234, 5678]
    with torch.no_grad():
        batched = _ours_batched(model, tensors, seeds)
        for item, seed in enumerate(seeds):
            alone = _upstream_alone(model, tensors, item, seed)
            torch.testing.assert_close(batched[item], alone, atol=1e-5, rtol=1e-4)
