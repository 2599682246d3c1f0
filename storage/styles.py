"""House styles: the LoRA adapter folders an operator put under `MODEL_DIR/loras/<name>/`.

The bot and the engine both read this folder: the bot to list the styles (`/styles`) and to refuse
an unknown one at submit, the engine to apply one to the DiT (`engine/acestep/styles.py`). A style
is a folder whose name is a plain word (letters, digits, `-`, `_`, `.`) holding the PEFT files
`adapter_config.json` and `adapter_model.safetensors`; whether those files fit the model is checked
by the engine, which loads them.
"""

from __future__ import annotations

import re
from pathlib import Path

LORAS_DIR = "loras"
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
STYLE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# What a bot without the ACE-Step model says when asked for a style.
STYLES_NEED_ACESTEP = "Styles need the ACE-Step model, and this bot makes sketches, so no style can be used here."


def loras_dir(model_dir: Path) -> Path:
    """Where the style folders live."""
    return Path(model_dir) / LORAS_DIR


def adapter_folder(folder: Path) -> Path | None:
    """Where a style's PEFT files are: the folder itself, or its `adapter/`; None when neither has them.

    The official trainer's `save_lora_weights` writes the files into `<output>/adapter/`, so its output
    folder copied under `loras/` as it is works too.
    """
    for candidate in (folder, folder / "adapter"):
        if (candidate / ADAPTER_CONFIG).is_file():
            return candidate
    return None


def style_names(model_dir: Path) -> list[str]:
    """The styles installed, sorted: folders with a plain name that hold an `adapter_config.json`."""
    root = loras_dir(model_dir)
    if not root.is_dir():
        return []
    found = [p.name for p in root.iterdir() if STYLE_NAME.match(p.name) and adapter_folder(p) is not None]
    return sorted(found, key=str.casefold)


def find_style(model_dir: Path, asked: str) -> str | None:
    """The installed style named `asked` (exactly, else the one equal ignoring case), or None."""
    names = style_names(model_dir)
    if asked in names:
        return asked
    folded = [name for name in names if name.casefold() == asked.casefold()]
    return folded[0] if len(folded) == 1 else None


def unknown_style_text(asked: str, names: list[str]) -> str:
    """The sentence for a style that is not installed, naming the ones that are."""
    if not names:
        return f"There is no style called {asked[:64]!r}; no styles are installed on this bot."
    return f"There is no style called {asked[:64]!r}; the styles here are {', '.join(names)} (see /styles)."
