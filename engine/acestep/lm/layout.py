"""The 5 Hz LM checkpoint folders: names and the files that make one usable (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

LM_NAMES = ("acestep-5Hz-lm-0.6B", "acestep-5Hz-lm-1.7B", "acestep-5Hz-lm-4B")
LM_FILES = ("config.json", "tokenizer.json")


def find_lm(model_dir: Path, name: str | None = None) -> Path | None:
    """The LM folder to use: ``name`` if given and present, else the first present of LM_NAMES."""
    for candidate in (name,) if name else LM_NAMES:
        folder = Path(model_dir) / candidate
        if all((folder / f).is_file() for f in LM_FILES) and _weight_files(folder):
            return folder
    return None


def _weight_files(folder: Path) -> list[Path]:
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        return [folder / s for s in shards]
    single = folder / "model.safetensors"
    return [single] if single.is_file() else []
