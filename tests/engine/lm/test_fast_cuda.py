"""On a GPU: the captured step graphs give the eager steps' tokens, and capture does not fall back."""

import pytest
import torch

from engine.acestep.lm.constraints import Constraint, Spec
from engine.acestep.lm.decode import DecodeJob
from engine.acestep.lm.fast import FastDecoder
from engine.acestep.lm.qwen3 import FastLM, Geometry

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _jobs(planner, guided: bool) -> list[DecodeJob]:
    tok = planner.lm.tokenizer
    uncond = tok.encode("<|im_start|>user\nNO USER INPUT<|im_end|>\n").ids
    return [
        DecodeJob(
            tok.encode(f"<|im_start|>user\nsong {seed}<|im_end|>\n").ids,
            Constraint(planner.vocab, Spec("codes", target_codes=target)),
            seed,
            uncond if guided else None,
            2.0,
            0.85,
            0.9,
            max_new_tokens=target + 1,
            phase=1,
        )
        for seed, target in ((1, 40), (2, 25), (3, 33))
    ]


@pytest.mark.parametrize("guided", [True, False])
def test_graph_replays_give_the_eager_tokens(tiny_planner, guided):
    geo = Geometry.from_config(tiny_planner.lm.config)
    lm = FastLM.random(geo, "cuda", torch.float32, seed=5)
    eager = FastDecoder(lm, tiny_planner.vocab, "codes", guided, graphs=False, len_step=16)
    graphed = FastDecoder(lm, tiny_planner.vocab, "codes", guided, graphs=True, len_step=16)
    expected = eager.decode(_jobs(tiny_planner, guided))
    assert graphed.decode(_jobs(tiny_planner, guided)) == expected
    assert graphed.graphs.enabled and graphed.graphs.graphs  # captured, not fallen back to eager
