"""The official checkpoint layout: which files a complete set needs, and the start-up check.

A complete set is what ``songbot models download DIR`` (the HF repo ACE-Step/Ace-Step1.5) writes (the
5 Hz LM sub-folder is optional here: the DiT runs without it). This module imports nothing of the
engine (it is read without torch); the tiny random set is written by ``tiny.make_tiny``.
"""

from __future__ import annotations

from pathlib import Path

from storage.contract.errors import ModelsMissing

DIT_DIR = "acestep-v15-turbo"
VAE_DIR = "vae"
TEXT_ENCODER_DIR = "Qwen3-Embedding-0.6B"
REQUIRED_FILES = (
    f"{DIT_DIR}/config.json",
    f"{DIT_DIR}/model.safetensors",
    f"{DIT_DIR}/silence_latent.pt",
    f"{VAE_DIR}/config.json",
    f"{VAE_DIR}/diffusion_pytorch_model.safetensors",
    f"{TEXT_ENCODER_DIR}/config.json",
    f"{TEXT_ENCODER_DIR}/model.safetensors",
    f"{TEXT_ENCODER_DIR}/tokenizer.json",
)
DOWNLOAD_COMMAND = "songbot models download {model_dir}"


def missing_files(model_dir: Path) -> list[str]:
    """Required files (relative to ``model_dir``) that are absent or empty."""
    model_dir = Path(model_dir)
    return [
        name for name in REQUIRED_FILES if not (model_dir / name).is_file() or (model_dir / name).stat().st_size == 0
    ]


def is_complete(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a complete checkpoint set (``ENGINE_BACKEND=auto`` asks this)."""
    return not missing_files(model_dir)


def require_complete(model_dir: Path) -> None:
    """Raise ModelsMissing naming the missing files and the one command that downloads them."""
    missing = missing_files(model_dir)
    if missing:
        command = DOWNLOAD_COMMAND.format(model_dir=model_dir)
        raise ModelsMissing(f"The model folder {model_dir} lacks {', '.join(missing)}; download them with: {command}")
