"""Optional vLLM backend for the audio-code phase without guidance.

Stock vLLM has no classifier-free guidance (a logits processor cannot run the second,
unconditional forward pass), so it serves only the code phase when ``cfg_scale <= 1``: the
allowed tokens are exactly the 64,000 code ids and ``min_tokens == max_tokens == 5 * duration``,
which is what the constraint enforces in that phase. Metadata phases stay on the torch loop.
vLLM is imported only here, only when ``LM_BACKEND=vllm``; the tests never need it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from engine.acestep.lm.constraints import Vocab
from engine.acestep.lm.decode import DecodeJob
from storage.contract.errors import ModelsMissing


def _prefixed_copy(folder: Path) -> Path:
    """Return a folder whose keys have the ``model.`` prefix vLLM expects (the 1.7B lacks it)."""
    weights = folder / "model.safetensors"
    if not weights.is_file():
        return folder
    state = load_file(str(weights))
    if all(k.startswith(("model.", "lm_head.")) for k in state):
        return folder
    out = Path(tempfile.mkdtemp(prefix="songbot-vllm-"))
    for item in folder.iterdir():
        if item.name != "model.safetensors" and item.is_file():
            shutil.copy2(item, out / item.name)
    save_file(
        {k if k.startswith("model.") else f"model.{k}": v for k, v in state.items()}, str(out / "model.safetensors")
    )
    return out


@dataclass
class VllmCodes:
    """A vLLM engine that writes audio codes."""

    llm: Any

    @classmethod
    def load(cls, folder: Path, device: str) -> VllmCodes:
        """Start vLLM on the LM folder.

        Raises:
            ModelsMissing: when vLLM is not installed or the device is not CUDA.
        """
        if not device.startswith("cuda"):
            raise ModelsMissing("LM_BACKEND=vllm needs a CUDA device; use LM_BACKEND=torch here.")
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ModelsMissing("LM_BACKEND=vllm needs the vllm package: pip install 'songbot[vllm]'.") from exc
        config = json.loads((folder / "config.json").read_text())
        path = _prefixed_copy(folder)
        return cls(
            LLM(
                model=str(path),
                dtype="bfloat16",
                max_model_len=4096,
                tokenizer=str(path),
                seed=0,
                trust_remote_code=False,
                max_num_seqs=64,
                enforce_eager=False,
                gpu_memory_utilization=0.5 if config.get("hidden_size", 0) < 4096 else 0.8,
            )
        )

    def codes(self, jobs: list[DecodeJob], vocab: Vocab) -> list[list[int]]:
        """Decode the code phase of every job (guidance off) and return codes 0..63999."""
        from vllm import SamplingParams, TokensPrompt

        allowed = list(range(vocab.code0, vocab.code0 + 64_000))
        params = []
        for job in jobs:
            target = job.constraint.spec.target_codes or 0
            params.append(
                SamplingParams(
                    temperature=job.temperature,
                    top_p=job.top_p or 1.0,
                    seed=job.seed,
                    min_tokens=target,
                    max_tokens=target,
                    allowed_token_ids=allowed,
                )
            )
        outputs = self.llm.generate([TokensPrompt(prompt_token_ids=j.prompt) for j in jobs], params)
        return [[t - vocab.code0 for t in out.outputs[0].token_ids] for out in outputs]
