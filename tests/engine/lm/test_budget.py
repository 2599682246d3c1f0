import subprocess
import sys

import pytest

from engine.acestep.lm.budget import ContextBudget, PlannerSettings, PlanRequest
from storage.contract.errors import UserError


@pytest.fixture(scope="module")
def budget(official_tokenizer):
    return ContextBudget(official_tokenizer, PlannerSettings())


def test_real_budget_limits_duration_by_lyrics(budget):
    free = budget.max_duration(PlanRequest("a song", seed=1))
    assert 300 < free < 600
    budget.check_fits(PlanRequest("a song", seed=1, duration=free))
    with pytest.raises(UserError) as err:
        budget.check_fits(PlanRequest("a song", seed=1, duration=free + 1))
    assert str(free) in err.value.user_message and err.value.user_message.count(".") == 1
    instrumental = budget.max_duration(PlanRequest("a song", seed=1, instrumental=True))
    assert instrumental == 600
    long_lyrics = budget.max_duration(PlanRequest("a song", seed=1, lyrics="la la la love\n" * 300))
    assert long_lyrics < free


def test_oversized_inputs_are_refused_before_queueing(budget):
    with pytest.raises(UserError):
        budget.check_fits(PlanRequest("a song", seed=1, lyrics="word " * 4000))
    with pytest.raises(UserError):
        budget.check_fits(PlanRequest("x " * 5000, seed=1))
    with pytest.raises(UserError):
        budget.check_fits(PlanRequest("a song", seed=1, duration=5))


def test_budget_loads_the_tokenizer_only(tiny_lm_dir):
    code = (
        "import sys; from pathlib import Path; from engine.acestep.lm.budget import ContextBudget, PlanRequest;"
        f"b = ContextBudget.load(Path({str(tiny_lm_dir)!r}));"
        "b.check_fits(PlanRequest('a song', seed=1, duration=30));"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
