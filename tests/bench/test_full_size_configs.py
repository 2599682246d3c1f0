"""The official configurations the GPU benches build load under this transformers (5.x refused a
``layer_types`` list whose length differed from the layer count); built on the meta device, no memory."""

import json

import pytest
import torch
from transformers import AutoModel, Qwen3Config, Qwen3ForCausalLM

from bench.facts import CONFIGS
from bench.lm import checkpoint_config


@pytest.mark.parametrize("geometry", ["0.6B", "1.7B", "4B"])
def test_each_planner_geometry_builds_as_the_lm_bench_builds_it(geometry):
    config = checkpoint_config(geometry)
    qconfig = Qwen3Config(**{k: v for k, v in config.items() if k not in ("architectures", "dtype", "torch_dtype")})
    with torch.device("meta"):
        model = Qwen3ForCausalLM(qconfig)
    assert len(model.model.layers) == config["num_hidden_layers"]


def test_the_text_encoder_config_builds_as_the_engine_bench_builds_it():
    qconfig = Qwen3Config.from_json_file(CONFIGS / "Qwen3-Embedding-0.6B" / "config.json")
    with torch.device("meta"):
        model = AutoModel.from_config(qconfig)
    config = json.loads((CONFIGS / "Qwen3-Embedding-0.6B" / "config.json").read_text())
    assert len(model.layers) == config["num_hidden_layers"]
