import pytest
import torch

from engine.acestep.lm.qwen3 import FastLM, Geometry


def test_own_forward_with_static_cache_matches_transformers(tiny_planner):
    model, config = tiny_planner.lm.model, tiny_planner.lm.config
    fast = FastLM.from_hf(model, config)
    prompts = [[5, 9, 200, 31, 7, 650, 12], [40, 41, 42]]
    keys, values = fast.new_cache(rows=4, halves=2, length=32)
    # Row 2, half 1 and row 0, half 0: where a request sits must not matter.
    places = [(2, 1), (0, 0)]
    for (row, half), prompt in zip(places, prompts, strict=True):
        fast.prefill(torch.tensor(prompt[:-1]), keys, values, row, half)
    tokens = torch.zeros((3, 2), dtype=torch.long)
    pos = torch.zeros((3, 2), dtype=torch.long)
    for (row, half), prompt in zip(places, prompts, strict=True):
        tokens[row, half], pos[row, half] = prompt[-1], len(prompt) - 1
    steps = [[300, 301], [17, 18]]
    for step in range(3):
        hidden = fast.decode(tokens, pos, keys, values, window=16)
        logits = fast.logits(hidden)
        for i, ((row, half), prompt) in enumerate(zip(places, prompts, strict=True)):
            seq = prompt + steps[i][:step]
            with torch.inference_mode():
                ref = model(input_ids=torch.tensor([seq])).logits[0, -1].float()
            assert torch.allclose(logits[row, half], ref, atol=1e-4, rtol=1e-4)
            if step < 2:
                tokens[row, half] = steps[i][step]
                pos[row, half] += 1


def test_from_hf_shares_the_weights(tiny_planner):
    model = tiny_planner.lm.model
    fast = FastLM.from_hf(model, tiny_planner.lm.config)
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.weight.data_ptr() == fast.layers[0].qkv.data_ptr()
    assert fast.head.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_geometry_reads_each_checkpoint_config(facts_dir):
    import json

    shapes = {}
    for name in ("0.6B", "1.7B", "4B"):
        config = json.loads((facts_dir / "configs" / f"acestep-5Hz-lm-{name}" / "config.json").read_text())
        geo = Geometry.from_config(config)
        shapes[name] = (geo.layers, geo.hidden, geo.heads, geo.kv_heads, geo.head_dim, geo.vocab)
        assert geo.heads % geo.kv_heads == 0 and geo.rope_theta > 0
    assert shapes["1.7B"] == (28, 2048, 16, 8, 128, 217_204)


@pytest.mark.parametrize(("heads", "kv_heads"), [(4, 2), (8, 2), (4, 4)])  # 1.7B and 0.6B group 2, 4B groups 4
def test_own_forward_matches_transformers_for_each_head_grouping(heads, kv_heads):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    from engine.acestep.lm.tiny import tiny_config

    config = {
        **tiny_config(300, 0, 0),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "vocab_size": 300,
    }
    config = {k: v for k, v in config.items() if k not in ("architectures", "dtype")}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(heads * 10 + kv_heads)
        qconfig = Qwen3Config(**config)
        qconfig._attn_implementation = "sdpa"
        model = Qwen3ForCausalLM(qconfig).eval()
    fast = FastLM.from_hf(model, config)
    seq = [3, 77, 150, 9, 260, 41]
    keys, values = fast.new_cache(rows=1, halves=1, length=16)
    fast.prefill(torch.tensor(seq[:-1]), keys, values, 0, 0)
    hidden = fast.decode(torch.tensor([[seq[-1]]]), torch.tensor([[len(seq) - 1]]), keys, values, window=16)
    with torch.inference_mode():
        ref = model(input_ids=torch.tensor([seq])).logits[0, -1]
    assert torch.allclose(fast.logits(hidden)[0, 0], ref, atol=1e-4, rtol=1e-4)
