"""A tiny random 5 Hz LM in the official folder layout, for tests and machines without weights.

The config is ``acestep-5Hz-lm-0.6B``'s shrunk to a few thousand parameters per layer; the
tokenizer is a small byte-level BPE with the same special and audio-code tokens as the real
one (see ``tokenizer.build_tiny_tokenizer``); the chat template is Qwen3's.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from engine.acestep.lm.chat_template import QWEN3_CHAT_TEMPLATE
from engine.acestep.lm.tokenizer import EOS, PAD, build_tiny_tokenizer, token_id

TINY_SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
}


# Planner budgets for the tiny LM (planner.BUDGETS_FILE): a random model never ends its free text.
TINY_BUDGETS = {"caption_max": 32, "genres_max": 8, "lyrics_max": 48}


def tiny_config(vocab_size: int, eos_id: int, pad_id: int) -> dict:
    """The 0.6B config with the tiny shape and the tiny vocabulary."""
    layers = TINY_SHAPE["num_hidden_layers"]
    return {
        "architectures": ["Qwen3ForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": pad_id,
        "dtype": "float32",
        "eos_token_id": eos_id,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "layer_types": ["full_attention"] * layers,
        "max_position_embeddings": 40960,
        "max_window_layers": layers,
        "model_type": "qwen3",
        "pad_token_id": pad_id,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab_size,
        **TINY_SHAPE,
    }


def make_tiny_lm(model_dir: Path, name: str = "acestep-5Hz-lm-0.6B", seed: int = 0) -> Path:
    """Write a tiny random LM folder ``model_dir/name`` in the official layout.

    Files: ``config.json``, ``model.safetensors`` (keys with the ``model.`` prefix, no
    ``lm_head``: tied), ``tokenizer.json``, ``tokenizer_config.json``,
    ``chat_template.jinja``, and ``songbot_planner.json`` (short planner budgets, see
    ``planner.BUDGETS_FILE``). The same seed writes the same weights.

    Returns:
        The folder written.
    """
    from transformers import Qwen3Config, Qwen3ForCausalLM

    folder = Path(model_dir) / name
    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tiny_tokenizer()
    config = tiny_config(tok.get_vocab_size(), token_id(tok, EOS), token_id(tok, PAD))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        qconfig = Qwen3Config(**{k: v for k, v in config.items() if k not in ("architectures", "dtype")})
        model = Qwen3ForCausalLM(qconfig)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tok.save(str(folder / "tokenizer.json"))
    tok_config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": PAD,
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config, indent=2) + "\n")
    (folder / "chat_template.jinja").write_text(QWEN3_CHAT_TEMPLATE, encoding="utf-8")
    (folder / "songbot_planner.json").write_text(json.dumps(TINY_BUDGETS) + "\n")
    return folder
