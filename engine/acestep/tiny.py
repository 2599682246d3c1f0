"""A complete tiny random checkpoint set in the official layout, for tests and CPU demos.

Every file is loaded back through the same code as the real checkpoints: our DiT loader
(strict keys), ``AutoencoderOobleck.from_pretrained`` and ``AutoModel.from_pretrained`` plus the
``tokenizer.json``. Nothing is downloaded: the tokenizer is a small byte-level BPE trained here,
with the real post-processor (append ``<|endoftext|>``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer

from engine.acestep.checkpoints import DIT_DIR, TEXT_ENCODER_DIR, VAE_DIR
from engine.acestep.config import DitConfig
from engine.acestep.model import AceStepDiT
from engine.acestep.text import COVER_INSTRUCTION, TEXT2MUSIC_INSTRUCTION, Metas, caption_prompt, lyrics_prompt
from storage.styles import ADAPTER_CONFIG, ADAPTER_WEIGHTS, loras_dir

TEXT_HIDDEN = 32
LATENT_CHANNELS = 8
SILENCE_FRAMES = 15_000  # 10 minutes at 25 Hz, like the real file
DEMO_STYLE = "demo"
DEMO_RANK, DEMO_ALPHA = 4, 8
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")

TINY_DIT = DitConfig(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    sliding_window=8,
    num_lyric_encoder_hidden_layers=2,
    num_timbre_encoder_hidden_layers=2,
    num_attention_pooler_hidden_layers=2,
    text_hidden_dim=TEXT_HIDDEN,
    # 8 latent channels instead of 64: a 64-channel Oobleck encoder needs 128 channels at the full
    # 48 kHz rate, far too slow for CPU tests. Folder, file and key names stay the official ones.
    audio_acoustic_hidden_dim=LATENT_CHANNELS,
    timbre_hidden_dim=LATENT_CHANNELS,
    in_channels=3 * LATENT_CHANNELS,
    fsq_dim=64,
    timbre_fix_frame=50,
)

TINY_VAE = {
    "audio_channels": 2,
    "channel_multiples": [1, 1, 2, 2, 2],
    "decoder_channels": 4,
    "decoder_input_channels": LATENT_CHANNELS,
    "downsampling_ratios": [2, 4, 4, 6, 10],
    "encoder_hidden_size": 2 * LATENT_CHANNELS,  # the encoder emits mean and scale
    "sampling_rate": 48000,
}


def make_tiny(model_dir: Path, seed: int = 0) -> None:
    """Write a complete tiny random checkpoint set in the official layout, the 5 Hz LM planner included."""
    from engine.acestep.lm.tiny import make_tiny_lm

    write_tiny_set(Path(model_dir), seed)
    make_tiny_lm(Path(model_dir), seed=seed)  # acestep-5Hz-lm-0.6B
    write_demo_style(loras_dir(Path(model_dir)) / DEMO_STYLE, TINY_DIT, seed)


def write_tiny_set(model_dir: Path, seed: int) -> None:
    """Write ``acestep-v15-turbo/``, ``vae/`` and ``Qwen3-Embedding-0.6B/`` under ``model_dir``."""
    write_dit(model_dir / DIT_DIR, TINY_DIT, seed)
    write_vae(model_dir / VAE_DIR, TINY_VAE, seed)
    write_text_encoder(model_dir / TEXT_ENCODER_DIR, seed)


def write_dit(folder: Path, config: DitConfig, seed: int) -> None:
    """``config.json``, bf16 ``model.safetensors`` and ``silence_latent.pt`` for ``config``."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = {**asdict(config), "architectures": ["AceStepConditionGenerationModel"], "model_type": "acestep"}
    raw.update({"is_turbo": True, "dtype": "bfloat16", "num_audio_decoder_hidden_layers": config.num_hidden_layers})
    (folder / "config.json").write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n")
    generator = torch.Generator().manual_seed(seed)
    state = random_state(AceStepDiT(config), generator)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    channels = config.audio_acoustic_hidden_dim
    level = torch.randn(1, channels, 1, generator=generator) * 0.5
    silence = level + 0.1 * torch.randn(1, channels, SILENCE_FRAMES, generator=generator)
    torch.save(silence, folder / "silence_latent.pt")


def write_demo_style(
    folder: Path, config: DitConfig, seed: int, rank: int = DEMO_RANK, alpha: int = DEMO_ALPHA
) -> None:
    """A random LoRA adapter for ``config``'s decoder in the PEFT folder format the official training saves.

    ``adapter_config.json`` with peft's keys (``LoraConfig`` as ``acestep/training/lora_utils.py``
    builds it: q/k/v/o projections, ``task_type`` FEATURE_EXTRACTION) and ``adapter_model.safetensors``
    with ``base_model.model.layers.<i>.<self|cross>_attn.<proj>.lora_{A,B}.weight``. Unlike a fresh
    peft adapter (B = 0) both halves are random, so the style changes the song.
    """
    folder.mkdir(parents=True, exist_ok=True)
    settings = {
        "alpha_pattern": {},
        "base_model_name_or_path": DIT_DIR,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "layers_pattern": None,
        "layers_to_transform": None,
        "lora_alpha": alpha,
        "lora_dropout": 0.1,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": rank,
        "rank_pattern": {},
        "revision": None,
        "target_modules": ["k_proj", "o_proj", "q_proj", "v_proj"],
        "task_type": "FEATURE_EXTRACTION",
        "use_dora": False,
        "use_rslora": False,
    }
    (folder / ADAPTER_CONFIG).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
    generator = torch.Generator().manual_seed(seed + 23)
    hidden, q_out, kv_out = (
        config.hidden_size,
        config.num_attention_heads * config.head_dim,
        config.num_key_value_heads * config.head_dim,
    )
    shapes = {
        "q_proj": (q_out, hidden),
        "k_proj": (kv_out, hidden),
        "v_proj": (kv_out, hidden),
        "o_proj": (hidden, q_out),
    }
    tensors = {}
    for layer in range(config.num_hidden_layers):
        for attention in ("self_attn", "cross_attn"):
            for proj, (out_features, in_features) in shapes.items():
                key = f"base_model.model.layers.{layer}.{attention}.{proj}"
                a = torch.randn(rank, in_features, generator=generator) / math.sqrt(in_features)
                tensors[f"{key}.lora_A.weight"] = a
                tensors[f"{key}.lora_B.weight"] = torch.randn(out_features, rank, generator=generator) * (
                    0.1 / math.sqrt(rank)
                )
    save_file(tensors, str(folder / ADAPTER_WEIGHTS))


def random_state(model: torch.nn.Module, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Random weights with sane scales: N(0, 0.5/√fan_in) matrices, norms near 1, small vectors."""
    state = {}
    for name, param in sorted(model.state_dict().items()):
        if name.endswith("norm.weight") or name.endswith("layernorm.weight"):
            value = 1.0 + 0.1 * torch.randn(param.shape, generator=generator)
        elif param.dim() >= 2 and "special_token" not in name and "scale_shift" not in name:
            fan_in = param.numel() // param.shape[0]
            value = torch.randn(param.shape, generator=generator) * (0.5 / math.sqrt(fan_in))
        else:
            value = 0.1 * torch.randn(param.shape, generator=generator)
        state[name] = value
    return state


def write_vae(folder: Path, config: dict, seed: int) -> None:
    """A diffusers ``AutoencoderOobleck`` with ``config``, saved with ``save_pretrained``."""
    from diffusers import AutoencoderOobleck

    torch.manual_seed(seed)
    AutoencoderOobleck(**config).save_pretrained(str(folder))  # type: ignore[attr-defined]  # diffusers' lazy import


def write_text_encoder(folder: Path, seed: int) -> None:
    """A tiny Qwen3 model (no ``model.`` key prefix, like Qwen3-Embedding) and its tokenizer."""
    from transformers import Qwen3Config, Qwen3Model

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    tokenizer.save(str(folder / "tokenizer.json"))
    eos = tokenizer.token_to_id("<|endoftext|>")
    config = Qwen3Config(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=TEXT_HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        max_position_embeddings=4096,
        rope_theta=1_000_000.0,  # type: ignore[call-arg]  # accepted as a config kwarg at run time
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(seed)
    Qwen3Model(config).save_pretrained(str(folder))


def build_tokenizer() -> Tokenizer:
    """A byte-level BPE over the prompt formats, with the text encoder's post-processor."""
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer)
    eos = tokenizer.token_to_id("<|endoftext|>")
    tokenizer.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="$A:0 <|endoftext|>:0",
                pair="$A:0 $B:0 <|endoftext|>:0",
                special_tokens=[("<|endoftext|>", eos)],
            ),
        ]
    )
    return tokenizer


def _corpus() -> list[str]:
    captions = ["upbeat synth-pop anthem", "dreamy ambient pads", "a jazz cover with brushed drums", "lofi hip hop"]
    lines = []
    for caption in captions:
        for instruction in (TEXT2MUSIC_INSTRUCTION, COVER_INSTRUCTION):
            lines.append(caption_prompt(instruction, caption, Metas(bpm=120, key="C major", duration_s=30)))
        lines.append(lyrics_prompt("[Verse]\nla la la, the night is young\n[Chorus]\nsing along", "en"))
    return lines
