"""House styles (engine/acestep/styles.py): the PEFT loader, the golden, merge and restore, the backend's use."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.acestep.backend import AceStepGenerator
from engine.acestep.config import DitConfig
from engine.acestep.model import AceStepDiT, load_dit
from engine.acestep.styles import (
    Adapter,
    StyleError,
    Styles,
    StyleSwitch,
    folder_hash,
    read_adapter,
    target_modules,
)
from engine.acestep.tiny import DEMO_STYLE, TINY_DIT, write_demo_style
from engine.protocol import TrackRequest
from storage.contract.results import StyleRef
from storage.styles import ADAPTER_CONFIG, ADAPTER_WEIGHTS, loras_dir, style_names
from tests.helpers import track_request

KIT = Path(__file__).parents[2] / "data" / "conformance" / "acestep_dit"
GOLDEN = Path(__file__).parents[2] / "data" / "styles"
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}  # the conformance kit's


@pytest.fixture(scope="module")
def kit_dit() -> AceStepDiT:
    return load_dit(KIT, "cpu", torch.float32)


def velocity(dit: AceStepDiT) -> torch.Tensor:
    """The kit's decoder_forward case (the golden's inputs)."""
    case = load_file(str(KIT / "case_decoder_forward.safetensors"))
    with torch.no_grad():
        cross = dit.decoder.cross_kv(case["in.encoder_hidden_states"])
        return dit.decoder(case["in.hidden_states"], case["in.timestep"], case["in.context_latents"], cross)


def weights(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in module.state_dict().items()}


def same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------ golden (real peft, the official handler)


@pytest.mark.parametrize("label", ["peft", "demo"])
def test_merged_adapter_equals_peft_at_every_scale(kit_dit: AceStepDiT, label: str, tmp_path: Path) -> None:
    golden = load_file(str(GOLDEN / "case_styles.safetensors"))
    folder = GOLDEN / "peft_adapter"
    if label == "demo":
        folder = tmp_path / "demo"
        write_demo_style(folder, DitConfig.from_file(KIT / "config.json"), seed=0)
    adapter = read_adapter(folder, label, target_modules(kit_dit.decoder))
    switch = StyleSwitch(kit_dit.decoder)
    base = velocity(kit_dit)
    torch.testing.assert_close(base, golden["out.velocity_base"], **TOLERANCE)
    try:
        for scale, tag in ((1.0, "1"), (0.5, "05"), (0.0, "00")):
            switch.apply(adapter, scale)
            got = velocity(kit_dit)
            torch.testing.assert_close(got, golden[f"out.velocity_{label}_scale{tag}"], **TOLERANCE)
            assert scale == 0.0 or (got - base).abs().max() > 0.1  # the style does change the output
        assert torch.equal(got, base)  # scale 0 is no style, bit for bit
    finally:
        switch.restore()


def test_the_peft_written_config_reads_as_upstream_scales_it() -> None:
    dit = AceStepDiT(DitConfig.from_file(KIT / "config.json"))
    adapter = read_adapter(GOLDEN / "peft_adapter", "peft", target_modules(dit.decoder))
    assert adapter.rank == 4 and adapter.scaling == 8 / 4  # lora_alpha / r
    assert len(adapter.pairs) == 4 * 2 * 4  # 4 layers × self/cross × q, k, v, o


def test_the_demo_style_has_the_keys_and_settings_peft_writes(tmp_path: Path) -> None:
    write_demo_style(tmp_path / "demo", TINY_DIT, seed=0)
    ours = load_file(str(tmp_path / "demo" / ADAPTER_WEIGHTS))
    peft = load_file(str(GOLDEN / "peft_adapter" / ADAPTER_WEIGHTS))
    assert ours.keys() == peft.keys()
    assert all(ours[k].shape == peft[k].shape for k in ours)
    config = json.loads((tmp_path / "demo" / ADAPTER_CONFIG).read_text())
    reference = json.loads((GOLDEN / "peft_adapter" / ADAPTER_CONFIG).read_text())
    for key in ("peft_type", "r", "lora_alpha", "bias", "task_type", "use_dora", "use_rslora", "fan_in_fan_out"):
        assert config[key] == reference[key], key
    assert sorted(config["target_modules"]) == sorted(reference["target_modules"])


# ------------------------------------------------------------------ merge and restore


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_restore_gives_back_every_weight_bit_for_bit(tmp_path: Path, dtype: torch.dtype) -> None:
    dit = load_dit(KIT, "cpu", dtype)
    write_demo_style(tmp_path / "demo", DitConfig.from_file(KIT / "config.json"), seed=0)
    other = tmp_path / "other"
    write_demo_style(other, DitConfig.from_file(KIT / "config.json"), seed=5)
    before = weights(dit)
    switch = StyleSwitch(dit.decoder)
    targets = target_modules(dit.decoder)
    switch.apply(read_adapter(tmp_path / "demo", "demo", targets), 1.0)
    assert not same_weights(before, weights(dit))
    switch.apply(read_adapter(other, "other", targets), 0.7)  # a switch goes through the originals
    switch.restore()
    assert same_weights(before, weights(dit))


def test_a_failed_merge_leaves_the_original_weights(kit_dit: AceStepDiT) -> None:
    before = weights(kit_dit)
    targets = target_modules(kit_dit.decoder)
    good = read_adapter(GOLDEN / "peft_adapter", "peft", targets)
    first = next(iter(good.pairs))
    broken = Adapter("broken", "0" * 64, 4, 2.0, {**good.pairs, "zzz.not_a_module": good.pairs[first]})
    switch = StyleSwitch(kit_dit.decoder)
    with pytest.raises(KeyError):
        switch.apply(broken, 1.0)
    assert switch.current is None and same_weights(before, weights(kit_dit))


# ------------------------------------------------------------------ validation: one sentence each


def damage(folder: Path, how: str) -> None:
    """Spoil a copy of the peft adapter in one way."""
    config_path, weights_path = folder / ADAPTER_CONFIG, folder / ADAPTER_WEIGHTS
    config = json.loads(config_path.read_text())
    tensors = load_file(str(weights_path))
    key = "base_model.model.layers.0.self_attn.q_proj"
    if how == "no config":
        config_path.unlink()
    elif how == "bad json":
        config_path.write_text("{not json")
    elif how == "no rank":
        del config["r"]
    elif how == "no alpha":
        del config["lora_alpha"]
    elif how == "dora":
        config["use_dora"] = True
    elif how == "not lora":
        config["peft_type"] = "IA3"
    elif how == "no weights":
        weights_path.unlink()
    elif how == "garbage weights":
        weights_path.write_bytes(b"\x00garbage" * 100)
    elif how == "unknown key":
        tensors["base_model.model.layers.0.self_attn.q_proj.magnitude"] = torch.zeros(3)
    elif how == "foreign module":
        tensors["base_model.model.layers.9.self_attn.q_proj.lora_A.weight"] = tensors[f"{key}.lora_A.weight"].clone()
    elif how == "wrong shape":
        tensors[f"{key}.lora_A.weight"] = torch.zeros(4, 48)
    elif how == "half missing":
        del tensors[f"{key}.lora_B.weight"]
    elif how == "nan":
        tensors[f"{key}.lora_B.weight"] = torch.full_like(tensors[f"{key}.lora_B.weight"], float("nan"))
    if config_path.exists() and how not in ("bad json",):
        config_path.write_text(json.dumps(config))
    if weights_path.exists() and how not in ("garbage weights",):
        save_file(tensors, str(weights_path))


DAMAGES = {
    "no config": "adapter_config.json is missing",
    "bad json": "not valid JSON",
    "no rank": "rank r is missing",
    "no alpha": "lora_alpha is missing",
    "dora": "uses use_dora",
    "not lora": "not LoRA",
    "no weights": "adapter_model.safetensors is missing",
    "garbage weights": "cannot be read",
    "unknown key": "unknown weight",
    "foreign module": "which this model does not have",
    "wrong shape": "the model needs",
    "half missing": "lora_B missing",
    "nan": "invalid numbers",
}


@pytest.mark.parametrize("how", sorted(DAMAGES))
def test_a_damaged_adapter_is_one_sentence(kit_dit: AceStepDiT, tmp_path: Path, how: str) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(GOLDEN / "peft_adapter", folder)
    damage(folder, how)
    with pytest.raises(StyleError) as caught:
        read_adapter(folder, "bad", target_modules(kit_dit.decoder))
    text = caught.value.user_message
    assert text.startswith("The style 'bad' cannot be used") and text.endswith(").") and DAMAGES[how] in text
    assert text.count(". ") == 0  # one sentence


def test_a_missing_folder_says_it_is_not_installed(kit_dit: AceStepDiT, tmp_path: Path) -> None:
    with pytest.raises(StyleError, match="is not installed"):
        read_adapter(tmp_path / "nowhere", "nowhere", target_modules(kit_dit.decoder))


def test_the_hash_follows_the_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(GOLDEN / "peft_adapter", a)
    shutil.copytree(GOLDEN / "peft_adapter", b)
    assert folder_hash(a) == folder_hash(b) and len(folder_hash(a)) == 64
    (b / "notes.txt").write_text("trained on 12 songs")
    assert folder_hash(a) != folder_hash(b)
    config = json.loads((a / ADAPTER_CONFIG).read_text())
    before = folder_hash(a)
    (a / ADAPTER_CONFIG).write_text(json.dumps({**config, "lora_alpha": 16}))
    assert folder_hash(a) != before


def test_make_tiny_writes_the_demo_style(tiny_set: Path) -> None:
    assert style_names(tiny_set) == [DEMO_STYLE]
    dit = AceStepDiT(TINY_DIT)
    assert read_adapter(loras_dir(tiny_set) / DEMO_STYLE, DEMO_STYLE, target_modules(dit.decoder)).rank == 4


# ------------------------------------------------------------------ the backend


@pytest.fixture(scope="module")
def generator(tiny_set: Path) -> AceStepGenerator:
    return AceStepGenerator(tiny_set, device="cpu", max_batch=4)


@pytest.fixture
def loras(generator: AceStepGenerator, tiny_set: Path, tmp_path: Path) -> Path:
    """A loras folder of this test's own (a copy of the demo style), which the test may change."""
    root = tmp_path / "loras"
    shutil.copytree(loras_dir(tiny_set), root)
    before = generator.styles.root
    generator.styles.root = root
    yield root  # type: ignore[misc]
    generator.styles.root = before


def song(job_id: int, seed: int, **extra: Any) -> TrackRequest:
    return track_request(job_id, "song", "lofi hip hop", "[Verse]\nla la la", False, 4, seed, **extra)


def quiet(_job: int | None, _stage: str, _percent: float) -> None:
    """Progress sink."""


def test_a_style_changes_the_song_and_scale_0_is_no_style(generator: AceStepGenerator) -> None:
    plain, styled, zero = generator.generate(
        [song(1, 5), song(2, 5, style="demo"), song(3, 5, style="demo", style_scale=0.0)], quiet
    )
    assert plain.style is None and styled.style is not None and zero.style is not None
    assert styled.style.name == "demo" and styled.style.scale == 1.0 and len(styled.style.sha256) == 64
    assert zero.style.scale == 0.0
    assert plain.latents is not None and styled.latents is not None
    assert np.abs(plain.latents - styled.latents).max() > 0.05  # the DiT's output moves (the tiny VAE is quiet)
    assert not np.array_equal(plain.audio, styled.audio)
    assert np.array_equal(plain.audio, zero.audio)


def test_a_mixed_batch_gives_each_track_what_it_gives_alone(generator: AceStepGenerator) -> None:
    requests = [song(1, 7), song(2, 8, style="demo"), song(3, 9, style="demo", style_scale=0.5), song(4, 10)]
    batched = generator.generate(requests, quiet)
    for request, track in zip(requests, batched, strict=True):
        [alone] = generator.generate([request], quiet)
        assert np.array_equal(track.audio, alone.audio), request.job_id
        assert track.style == alone.style


def test_no_dit_call_mixes_styles(generator: AceStepGenerator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever ENGINE_EXACT_BATCHES says, the pipeline is called once per style and scale."""
    calls: list[tuple[tuple[str, str, float] | None, int]] = []
    real: Callable[..., Any] = generator.pipeline.generate

    def spy(tracks: list[Any], *args: Any, **kwargs: Any) -> Any:
        calls.append((generator.styles.switch.current, len(tracks)))
        return real(tracks, *args, **kwargs)

    monkeypatch.setattr(generator.pipeline, "generate", spy)
    half = song(3, 3, style="demo", style_scale=0.5)
    requests = [song(1, 1, style="demo"), song(2, 2), half, song(4, 4, style="demo")]
    generator.generate(requests, quiet)  # one chunk (max_batch 4)
    assert [(None if key is None else key[2], n) for key, n in calls] == [(None, 1), (1.0, 2), (0.5, 1)]
    assert generator.styles.switch.current is None  # the decoder is left without a style


def test_a_reroll_with_the_stored_hash_is_exact(generator: AceStepGenerator) -> None:
    [first] = generator.generate([song(1, 42, style="demo", style_scale=0.8)], quiet)
    assert first.style is not None
    reroll = song(2, 42, style="demo", style_scale=0.8, style_sha256=first.style.sha256)
    [again] = generator.generate([reroll], quiet)
    assert np.array_equal(first.audio, again.audio) and again.style == first.style


def test_a_changed_removed_or_damaged_style_fails_its_job_alone(generator: AceStepGenerator, loras: Path) -> None:
    [made] = generator.generate([song(1, 3, style="demo")], quiet)
    assert made.style is not None
    config = json.loads((loras / "demo" / ADAPTER_CONFIG).read_text())
    (loras / "demo" / ADAPTER_CONFIG).write_text(json.dumps({**config, "lora_alpha": 4}))
    shutil.copytree(loras / "demo", loras / "broken")
    (loras / "broken" / ADAPTER_WEIGHTS).write_bytes(b"not safetensors")
    requests = [
        song(2, 3, style="demo", style_sha256=made.style.sha256),  # a re-roll after the adapter changed
        song(3, 3, style="gone"),
        song(4, 3, style="broken"),
        song(5, 3),
    ]
    changed, gone, broken, plain = generator.generate(requests, quiet)
    assert changed.error is not None and "has changed since this song was made" in changed.error
    assert gone.error is not None and "is not installed" in gone.error
    assert broken.error is not None and "cannot be used" in broken.error and "cannot be read" in broken.error
    assert plain.error is None and plain.audio.shape[0] > 0
    [fresh] = generator.generate([song(6, 3, style="demo")], quiet)  # the engine goes on; the new files are used
    assert fresh.error is None and fresh.style is not None and fresh.style.sha256 != made.style.sha256


def test_the_official_trainers_output_folder_is_a_style(generator: AceStepGenerator, loras: Path) -> None:
    """``save_lora_weights`` writes the PEFT files into ``<output>/adapter/``; that folder copied as it is works."""
    shutil.copytree(loras / "demo", loras / "trained" / "adapter")
    assert style_names(loras.parent) == ["demo", "trained"]
    ref = generator.styles.resolve("trained", 0.5)
    assert ref.sha256 == folder_hash(loras / "demo") and ref.scale == 0.5
    [made] = generator.generate([song(1, 3, style="trained")], quiet)
    assert made.error is None and made.style is not None and made.style.name == "trained"


def test_styles_resolve_names_the_scale_it_applies(generator: AceStepGenerator) -> None:
    styles: Styles = generator.styles
    ref = styles.resolve("demo", None)
    assert ref == StyleRef(name="demo", scale=1.0, sha256=folder_hash(styles.root / "demo"))
    with pytest.raises(StyleError, match="is not installed"):
        styles.resolve("../demo", None)
