"""The pieces of `bench/service.py --full-size` that can run on a CPU: the in-memory planner and the stage clock."""

import pytest

from bench.load import Clock, full_size_planner
from engine.acestep.lm.budget import PlanRequest


def test_the_full_size_planner_recipe_plans_a_song():
    planner = full_size_planner(
        "cpu",
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_key_value_heads": 1,
            "head_dim": 32,
        },
    )
    assert planner.lm.model.config.vocab_size == 217_204  # the official vocabulary
    plan = planner.plan([PlanRequest(description="a calm piano piece", seed=1, duration=10)])[0]
    assert len(plan.audio_codes) == 50  # five codes per second, as at full size


def test_busy_time_counts_overlapping_stages_once():
    clock = Clock()
    clock.add("plan", 0.0, 2.0)
    clock.add("generate", 1.0, 3.0)
    clock.add("generate", 5.0, 6.0)
    assert clock.busy(("plan", "generate"), 0.0, 10.0) == pytest.approx(4.0)
    assert clock.busy(("generate",), 2.0, 5.5) == pytest.approx(1.5)
    assert clock.summary()["generate"]["count"] == 2
