"""Choosing and loading the backend named by ENGINE_BACKEND."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TypedDict, Unpack

from engine.protocol import Generator
from engine.sketch import SketchGenerator
from storage.contract.errors import ModelsMissing

log = logging.getLogger("songbot.engine")

DOWNLOAD_HINT = "songbot models download {model_dir}"


def choose_backend(backend: str, model_dir: Path) -> str:
    """`auto` → `acestep` when the model directory holds checkpoints, else `sketch`.

    Raises:
        ModelsMissing: `acestep` was asked for (or the directory holds a partial set) and files are missing.
    """
    if backend == "sketch":
        return "sketch"
    missing = _missing(model_dir)
    if not missing:
        return "acestep"
    partial = model_dir.is_dir() and any(model_dir.iterdir())
    if backend == "acestep" or partial:
        listing = ", ".join(missing)
        raise ModelsMissing(
            f"The model directory {model_dir} is incomplete; missing: {listing}. "
            f"Download them with: {DOWNLOAD_HINT.format(model_dir=model_dir)}"
        )
    return "sketch"


class AceStepOptions(TypedDict, total=False):
    """What `AceStepGenerator` takes besides its model folder and batch size (its defaults apply when left out)."""

    device: str
    lm_model: str | None
    lm_backend: str
    lm_thinking: bool
    max_duration_s: int
    exact_batches: bool


def load_backend(backend: str, model_dir: Path, max_batch: int = 4, **options: Unpack[AceStepOptions]) -> Generator:
    """Load the chosen backend once (this is where model weights are read)."""
    name = choose_backend(backend, model_dir)
    if name == "sketch":
        log.warning("no model weights: using the sketch synthesizer", extra={"model_dir": str(model_dir)})
        return SketchGenerator(max_batch=max_batch)
    from engine.acestep.backend import AceStepGenerator

    # time_lyrics comes to AceStepGenerator on branch H1 (issue 22); remove this ignore once it is merged.
    return AceStepGenerator(model_dir, max_batch=max_batch, **options)


def _missing(model_dir: Path) -> list[str]:
    try:
        from engine.acestep.checkpoints import missing_files
    except ImportError:
        # Without torch and friends the real engine cannot run; say what to install.
        if model_dir.is_dir() and any(model_dir.iterdir()):
            raise ModelsMissing(
                "Model weights are present but the ACE-Step engine's packages are not installed; "
                "install them with: pip install -e '.[acestep]'"
            ) from None
        return ["acestep-v15-turbo/", "vae/", "Qwen3-Embedding-0.6B/"]
    return missing_files(model_dir)
