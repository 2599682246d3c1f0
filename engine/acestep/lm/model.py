"""Loading a 5 Hz LM checkpoint folder (``acestep-5Hz-lm-{0.6B,1.7B,4B}``) into a Qwen3 causal LM.

The weights are plain Qwen3. Two layout quirks: the 1.7B stores keys without the ``model.``
prefix (0.6B and 4B have it), and no checkpoint stores ``lm_head`` (embeddings are tied).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

from engine.acestep.lm.layout import LM_FILES, LM_NAMES, _weight_files, find_lm  # noqa: F401
from engine.acestep.lm.prompts import ChatTemplate, Prompts
from engine.acestep.lm.tokenizer import load_tokenizer
from storage.contract.errors import ModelsMissing


def dtype_for(device: str) -> torch.dtype:
    """bf16 on CUDA, fp32 elsewhere (never fp16)."""
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def _state_dict(folder: Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(folder):
        for key, value in load_file(str(path)).items():
            if not key.startswith(("model.", "lm_head.")):
                key = f"model.{key}"
            state[key] = value
    return state


@dataclass
class LoadedLM:
    """A loaded LM with what the planner needs around it."""

    model: torch.nn.Module
    tokenizer: Tokenizer
    prompts: Prompts
    config: dict
    folder: Path
    device: str

    @property
    def vocab_size(self) -> int:
        """The model's logit width."""
        return int(self.config["vocab_size"])


def load_lm(folder: Path, device: str = "cpu") -> LoadedLM:
    """Load the model, tokenizer and chat template of one LM folder.

    Raises:
        ModelsMissing: when the folder lacks config, tokenizer or weights.
    """
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = Path(folder)
    if not all((folder / f).is_file() for f in LM_FILES) or not _weight_files(folder):
        raise ModelsMissing(f"The LM folder {folder} lacks its config, tokenizer or weights.")
    config = json.loads((folder / "config.json").read_text())
    qconfig = Qwen3Config(**{k: v for k, v in config.items() if k not in ("architectures", "dtype")})
    qconfig._attn_implementation = "sdpa"
    with torch.device("meta"):
        model = Qwen3ForCausalLM(qconfig)
    state = _state_dict(folder)
    if "lm_head.weight" not in state:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    _init_rotary(model, "cpu")
    model.to(device=device, dtype=dtype_for(device))  # type: ignore[call-arg]  # mypy misreads the wrapper
    _init_rotary(model, device)  # again: ``to(dtype)`` would have cast the fp32 tables to bf16
    model.eval()
    return LoadedLM(
        model=model,
        tokenizer=load_tokenizer(folder),
        prompts=Prompts(ChatTemplate.from_dir(folder)),
        config=config,
        folder=folder,
        device=device,
    )


def _init_rotary(model: torch.nn.Module, device: str) -> None:
    """Rebuild the rotary tables, which are not in the checkpoint and were created on ``meta``."""
    from transformers.models.qwen3.modeling_qwen3 import Qwen3RotaryEmbedding

    inner: Any = model.model
    inner.rotary_emb = Qwen3RotaryEmbedding(config=inner.config).to(device)
