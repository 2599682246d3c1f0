import json

import pytest
from safetensors.torch import load_file, save_file

from engine.acestep.lm.chat_template import QWEN3_CHAT_TEMPLATE
from engine.acestep.lm.model import find_lm, load_lm
from engine.acestep.lm.plan import codes_to_string, parse_codes
from engine.acestep.lm.tokenizer import encode
from storage.contract.errors import ModelsMissing


def test_tiny_lm_has_the_official_layout(tiny_lm_dir, facts_dir):
    folder = tiny_lm_dir / "acestep-5Hz-lm-0.6B"
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    config = json.loads((folder / "config.json").read_text())
    real = json.loads((facts_dir / "configs" / "acestep-5Hz-lm-0.6B" / "config.json").read_text())
    assert set(real) - {"transformers_version"} <= set(config)
    assert config["tie_word_embeddings"] and config["model_type"] == "qwen3"
    keys = load_file(str(folder / "model.safetensors")).keys()
    assert all(k.startswith("model.") for k in keys) and "lm_head.weight" not in keys
    assert (folder / "chat_template.jinja").read_text() == QWEN3_CHAT_TEMPLATE
    assert find_lm(tiny_lm_dir) == folder


def test_tiny_tokenizer_has_the_code_tokens(tiny_lm_dir):
    lm = load_lm(tiny_lm_dir / "acestep-5Hz-lm-0.6B")
    tok = lm.tokenizer
    assert tok.get_vocab_size() == lm.vocab_size
    code0 = tok.token_to_id("<|audio_code_0|>")
    assert tok.token_to_id("<|audio_code_65534|>") == code0 + 65534
    ids = encode(tok, codes_to_string([0, 63999, 7]))
    assert ids == [code0, code0 + 63999, code0 + 7]
    assert parse_codes(tok.decode(ids, skip_special_tokens=False)) == [0, 63999, 7]
    assert encode(tok, " 120\n")[1:4] == [encode(tok, d)[0] for d in "120"]


def test_loader_adds_the_missing_model_prefix(tiny_lm_dir, tmp_path):
    import shutil

    import torch

    src = tiny_lm_dir / "acestep-5Hz-lm-0.6B"
    dst = tmp_path / "acestep-5Hz-lm-1.7B"
    shutil.copytree(src, dst)
    state = load_file(str(dst / "model.safetensors"))
    save_file({k.removeprefix("model."): v for k, v in state.items()}, str(dst / "model.safetensors"))
    a, b = load_lm(src), load_lm(dst)
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        assert torch.equal(a.model(ids).logits, b.model(ids).logits)


def test_missing_folder_is_reported(tmp_path):
    assert find_lm(tmp_path) is None
    with pytest.raises(ModelsMissing):
        load_lm(tmp_path / "acestep-5Hz-lm-0.6B")
