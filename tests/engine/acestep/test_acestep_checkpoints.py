"""The checkpoint layout check and the tiny set written in the official layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from engine.acestep.checkpoints import REQUIRED_FILES, missing_files, require_complete
from engine.acestep.model import load_dit, load_silence_latent
from storage.contract.errors import ModelsMissing
from tests.helpers import FACTS


def test_empty_folder_misses_every_required_file(tmp_path: Path) -> None:
    assert missing_files(tmp_path) == list(REQUIRED_FILES)


def test_tiny_set_is_complete(tiny_set: Path) -> None:
    assert missing_files(tiny_set) == []
    require_complete(tiny_set)


def test_partial_set_names_missing_files_and_the_download_command(tmp_path: Path) -> None:
    (tmp_path / "vae").mkdir()
    (tmp_path / "vae" / "config.json").write_text("{}")
    with pytest.raises(ModelsMissing) as err:
        require_complete(tmp_path)
    message = err.value.user_message
    assert "acestep-v15-turbo/model.safetensors" in message and "vae/config.json" not in message
    assert "songbot models download" in message


def test_required_files_match_the_official_layout() -> None:
    layout = (FACTS / "layout.md").read_text()
    for name in REQUIRED_FILES:
        assert f"`{Path(name).name}`" in layout, name


def test_tiny_dit_loads_strictly_and_rejects_a_foreign_key(tiny_set: Path, tmp_path: Path) -> None:
    dit_dir = tiny_set / "acestep-v15-turbo"
    model = load_dit(dit_dir)
    state = load_file(str(dit_dir / "model.safetensors"))
    assert state["decoder.proj_in.1.weight"].dtype == torch.bfloat16  # stored like the official file
    assert set(model.state_dict()) == set(state)
    assert load_silence_latent(dit_dir, "cpu", torch.float32).shape[1] == 15_000
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text((dit_dir / "config.json").read_text())
    state["decoder.extra.weight"] = torch.zeros(1)
    save_file(state, str(broken / "model.safetensors"))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        load_dit(broken)


def test_tiny_dit_config_keeps_the_official_keys(tiny_set: Path) -> None:
    ours = json.loads((tiny_set / "acestep-v15-turbo" / "config.json").read_text())
    official = json.loads((FACTS / "configs" / "acestep-v15-turbo" / "config.json").read_text())
    shared = {"hidden_size", "layer_types", "sliding_window", "fsq_input_levels", "pool_window_size", "is_turbo"}
    assert shared <= set(ours) and shared <= set(official)


def test_official_full_size_config_parses() -> None:
    from engine.acestep.config import DitConfig

    config = DitConfig.from_file(FACTS / "configs" / "acestep-v15-turbo" / "config.json")
    assert (config.hidden_size, config.num_hidden_layers, config.sliding_window) == (2048, 24, 128)
    assert config.is_sliding(0) and not config.is_sliding(1)


def test_full_size_model_has_the_official_677_keys_and_shapes() -> None:
    import ast

    from engine.acestep.config import DitConfig
    from engine.acestep.model import AceStepDiT

    listing = (FACTS.parent / "acestep_dit" / "keys_full_2b.txt").read_text().splitlines()
    official = {}
    for line in listing:
        if line.strip() and not line.startswith("#"):
            name, shape, *_ = line.split("\t")
            official[name] = tuple(ast.literal_eval(shape))
    config = DitConfig.from_file(FACTS / "configs" / "acestep-v15-turbo" / "config.json")
    with torch.device("meta"):
        ours = {k: tuple(v.shape) for k, v in AceStepDiT(config).state_dict().items()}
    assert len(official) == 677 and ours == official
