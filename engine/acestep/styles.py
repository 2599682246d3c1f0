"""House styles: PEFT LoRA adapters from ``MODEL_DIR/loras/<name>/`` applied to the DiT decoder.

The official project trains LoRA adapters on the decoder (``acestep/training/lora_utils.py``: rank
``r``, ``lora_alpha``, the attention projections ``q_proj k_proj v_proj o_proj`` of every layer, self-
and cross-attention) and loads one with peft's ``PeftModel`` (``handler.load_lora``). We read the same
folder without peft: ``adapter_config.json`` and ``adapter_model.safetensors``, whose keys are
``base_model.model.<module>.lora_A.weight`` [r, in] and ``...lora_B.weight`` [out, r].

Scale: upstream's ``set_lora_scale(s)`` clamps s to 0..1 and sets each LoRA layer's
``scaling = (lora_alpha / r) * s`` (``lora_alpha / sqrt(r)`` with ``use_rslora``); a freshly loaded
adapter has s = 1. So the weight change is ``s * scaling * B @ A``, and a style's default scale is 1.

Applying: the change is *merged* into the weights (computed in fp32, rounded once to the weight's
dtype) and undone by copying the kept original weights back, never by subtraction, so unmerging
restores them bit for bit. Merging costs one [out, r] @ [r, in] product per projection when the
style changes and nothing per step; holding the adapter beside the weights costs two thin matmuls
per projection at every step (``bench/styles.py`` measures both; merge wins on the CPU sizes tried).
In place (``copy_``), so compiled layers see the new weights.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from storage.contract.errors import GenerationError
from storage.contract.results import StyleRef
from storage.styles import ADAPTER_CONFIG, ADAPTER_WEIGHTS, STYLE_NAME, adapter_folder, loras_dir

KEY = re.compile(r"^base_model\.model\.(.+)\.lora_([AB])\.weight$")
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")  # upstream's LoRAConfig.target_modules
ADAPTERS_KEPT = 2  # loaded adapters kept in memory, most recent first


class StyleError(GenerationError):
    """A style cannot be applied; the job fails with this sentence and the engine goes on."""


def gone_text(name: str) -> str:
    """The sentence for a style that is not installed (any more)."""
    return (
        f"The style {name!r} is not installed on this engine, so this song cannot be made with it; "
        "/styles lists the ones there are."
    )


def changed_text(name: str) -> str:
    """The sentence for a re-roll whose style's files changed since its song was made."""
    return (
        f"The style {name!r} has changed since this song was made, so a re-roll cannot repeat it; "
        f"make a new song with style={name} instead."
    )


def broken_text(name: str, why: str) -> str:
    """The sentence for a style folder that cannot be used."""
    return f"The style {name!r} cannot be used because its adapter files are damaged or do not fit this model ({why})."


@dataclass(frozen=True)
class Adapter:
    """A validated LoRA adapter: per decoder module, its (A [r, in], B [out, r]) in fp32 on the CPU."""

    name: str
    sha256: str
    rank: int
    scaling: float  # lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora
    pairs: dict[str, tuple[torch.Tensor, torch.Tensor]]


# ------------------------------------------------------------------ files


_hash_cache: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def folder_hash(folder: Path) -> str:
    """sha256 over the folder's files in sorted order: each file's relative path, size and bytes.

    Cached by (path, size, mtime) of every file, so a batch does not re-read an unchanged adapter.
    """
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    stamp = tuple((p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    key = (str(folder.resolve()), stamp)
    if key in _hash_cache:
        return _hash_cache[key]
    digest = hashlib.sha256()
    for path, (relative, size, _) in zip(files, stamp, strict=True):
        digest.update(f"{relative}\0{size}\0".encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def target_modules(decoder: nn.Module) -> dict[str, nn.Linear]:
    """The decoder's linear layers by module path (the names a PEFT key carries)."""
    return {name: module for name, module in decoder.named_modules() if isinstance(module, nn.Linear)}


def read_config(folder: Path) -> tuple[int, float]:
    """(rank, scaling) from ``adapter_config.json``; raises ValueError with the reason in a few words."""
    try:
        raw: Any = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{ADAPTER_CONFIG} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{ADAPTER_CONFIG} is not valid JSON") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{ADAPTER_CONFIG} is not a JSON object")
    if raw.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"it is a {str(raw.get('peft_type'))[:20]} adapter, not LoRA")
    rank, alpha = raw.get("r"), raw.get("lora_alpha")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank <= 0:
        raise ValueError("its rank r is missing or not a positive whole number")
    if not isinstance(alpha, int | float) or isinstance(alpha, bool) or not math.isfinite(alpha):
        raise ValueError("its lora_alpha is missing or not a number")
    unsupported = {
        "use_dora": bool(raw.get("use_dora")),
        "fan_in_fan_out": bool(raw.get("fan_in_fan_out")),
        "modules_to_save": bool(raw.get("modules_to_save")),
        "rank_pattern": bool(raw.get("rank_pattern")),
        "alpha_pattern": bool(raw.get("alpha_pattern")),
        "bias": raw.get("bias", "none") not in ("none", None),
        "lora_bias": bool(raw.get("lora_bias")),
    }
    chosen = [name for name, used in unsupported.items() if used]
    if chosen:
        raise ValueError(f"it uses {chosen[0]}, which songbot does not apply")
    scaling = alpha / math.sqrt(rank) if raw.get("use_rslora") else alpha / rank
    return rank, float(scaling)


def read_pairs(folder: Path, rank: int, targets: dict[str, nn.Linear]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Every module's (A, B) from ``adapter_model.safetensors``, checked against the decoder's shapes."""
    path = folder / ADAPTER_WEIGHTS
    if not path.is_file():
        raise ValueError(f"{ADAPTER_WEIGHTS} is missing")
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError):
        raise ValueError(f"{ADAPTER_WEIGHTS} cannot be read") from None
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = KEY.match(key)
        if not match:
            raise ValueError(f"it holds the unknown weight {key[:80]}")
        module, half = match.groups()
        if module not in targets:
            raise ValueError(f"it changes {module[:80]}, which this model does not have")
        halves.setdefault(module, {})[half] = tensor
    if not halves:
        raise ValueError(f"{ADAPTER_WEIGHTS} holds no LoRA weights")
    return {module: _pair(module, parts, rank, targets[module]) for module, parts in sorted(halves.items())}


def _pair(
    module: str, parts: dict[str, torch.Tensor], rank: int, linear: nn.Linear
) -> tuple[torch.Tensor, torch.Tensor]:
    if set(parts) != {"A", "B"}:
        raise ValueError(f"{module} has lora_{'A' if 'A' not in parts else 'B'} missing")
    a, b = parts["A"], parts["B"]
    if tuple(a.shape) != (rank, linear.in_features) or tuple(b.shape) != (linear.out_features, rank):
        raise ValueError(
            f"{module} is {tuple(b.shape)} x {tuple(a.shape)}, and the model needs "
            f"({linear.out_features}, {rank}) x ({rank}, {linear.in_features})"
        )
    if not (a.is_floating_point() and b.is_floating_point()):
        raise ValueError(f"{module} does not hold floating-point weights")
    a, b = a.float(), b.float()
    if not (torch.isfinite(a).all() and torch.isfinite(b).all()):
        raise ValueError(f"{module} holds invalid numbers")
    return a, b


def read_adapter(folder: Path, name: str, targets: dict[str, nn.Linear], sha256: str | None = None) -> Adapter:
    """Load and validate one adapter folder.

    Raises:
        StyleError: the folder is missing, damaged or does not fit the decoder (one sentence).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StyleError(gone_text(name))
    try:
        rank, scaling = read_config(folder)
        pairs = read_pairs(folder, rank, targets)
    except ValueError as error:
        raise StyleError(broken_text(name, str(error))) from None
    return Adapter(name, sha256 or folder_hash(folder), rank, scaling, pairs)


# ------------------------------------------------------------------ applying


class StyleSwitch:
    """Merges at most one adapter into a decoder's weights, and restores them bit for bit.

    Which adapter is merged, at what scale, is ``current`` (None: the original weights). The
    original of every weight ever changed is kept (one copy of the touched projections, on the
    weights' device) and copied back by ``restore``.
    """

    def __init__(self, decoder: nn.Module) -> None:
        self.decoder = decoder
        self.targets = target_modules(decoder)
        self.originals: dict[str, torch.Tensor] = {}
        self.changed: set[str] = set()
        self.current: tuple[str, str, float] | None = None  # (name, sha256, scale)

    @torch.no_grad()
    def apply(self, adapter: Adapter | None, scale: float = 1.0) -> None:
        """Make the decoder the original plus ``scale`` × the adapter (None or scale 0: the original)."""
        wanted = None if adapter is None or scale == 0 else (adapter.name, adapter.sha256, float(scale))
        if wanted == self.current:
            return
        self.restore()
        if adapter is None or wanted is None:
            return
        try:
            for module, (a, b) in adapter.pairs.items():
                self._merge(module, a, b, float(scale) * adapter.scaling)
        except BaseException:
            self.restore()
            raise
        self.current = wanted

    def _merge(self, module: str, a: torch.Tensor, b: torch.Tensor, factor: float) -> None:
        weight = self.targets[module].weight
        if module not in self.originals:
            self.originals[module] = weight.detach().clone()
        self.changed.add(module)
        delta = b.to(weight.device) @ a.to(weight.device)
        weight.copy_((self.originals[module].float() + delta * factor).to(weight.dtype))

    @torch.no_grad()
    def restore(self) -> None:
        """The original weights back, by copy (bit for bit)."""
        for module in sorted(self.changed):
            self.targets[module].weight.copy_(self.originals[module])
        self.changed.clear()
        self.current = None


class Styles:
    """The engine's styles: resolves a request's style to a ``StyleRef`` and applies it to the DiT."""

    def __init__(self, model_dir: Path, decoder: nn.Module) -> None:
        self.root = loras_dir(model_dir)
        self.switch = StyleSwitch(decoder)
        self._loaded: OrderedDict[tuple[str, str], Adapter] = OrderedDict()

    def resolve(self, name: str, scale: float | None, expected_sha256: str | None = None) -> StyleRef:
        """The style as it will be applied: its folder's hash now, and the scale (1.0 = the adapter's own).

        Raises:
            StyleError: not installed, changed since ``expected_sha256``, or unusable.
        """
        folder = adapter_folder(self.root / name) if STYLE_NAME.match(name) else None
        if folder is None:
            raise StyleError(gone_text(name))
        sha256 = folder_hash(folder)
        if expected_sha256 is not None and sha256 != expected_sha256:
            raise StyleError(changed_text(name))
        self.adapter(StyleRef(name=name, scale=1.0, sha256=sha256))  # validated now, so the job fails before the DiT
        return StyleRef(name=name, scale=1.0 if scale is None else float(scale), sha256=sha256)

    def adapter(self, ref: StyleRef) -> Adapter:
        """The validated adapter of ``ref`` (kept for the next batches)."""
        key = (ref.name, ref.sha256)
        if key not in self._loaded:
            folder = adapter_folder(self.root / ref.name) or self.root / ref.name
            self._loaded[key] = read_adapter(folder, ref.name, self.switch.targets, ref.sha256)
            while len(self._loaded) > ADAPTERS_KEPT:
                self._loaded.popitem(last=False)
        self._loaded.move_to_end(key)
        return self._loaded[key]

    def use(self, ref: StyleRef | None) -> None:
        """Apply ``ref`` to the decoder (None: no style)."""
        if ref is None:
            self.switch.apply(None)
        else:
            self.switch.apply(self.adapter(ref), ref.scale)

    def restore(self) -> None:
        """The decoder without any style."""
        self.switch.restore()


def group_key(ref: StyleRef | None) -> tuple[str, str, float] | None:
    """What the DiT must be for a track: None for no style (a style at scale 0 is no style)."""
    if ref is None or ref.scale == 0:
        return None
    return (ref.name, ref.sha256, ref.scale)
