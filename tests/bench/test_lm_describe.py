"""The /describe case of bench/lm.py: what it decodes, where it runs in the order, and its summary key."""

from bench.lm import HEADLINE, cases, describe_jobs, summary
from engine.acestep.lm.constraints import Vocab
from engine.acestep.lm.tokenizer import build_tiny_tokenizer


def test_a_describe_reads_its_seconds_of_codes_then_writes_the_seven_fields_at_temperature_0_3() -> None:
    vocab = Vocab.build(build_tiny_tokenizer(), 217_204)
    [job] = describe_jobs(vocab, 1, 12, (24, 6, 24))
    assert len(job.prompt) == 60 and all(vocab.code0 <= t < vocab.code0 + 64_000 for t in job.prompt)
    assert job.temperature == 0.3 and job.uncond_prompt is None and job.cfg_scale == 1.0


def test_the_describe_case_runs_with_the_headline_and_gives_describe_b1_tok_s() -> None:
    assert cases([1, 32])[: len(HEADLINE)][-1] == ("describe", 1, False)
    assert cases([8])[:2] == [("meta", 1, False), ("describe", 1, False)]
    row = {"phase": "describe", "batch": 1, "guidance": False, "tok_s_per_request": 151.0}
    assert summary([row])["describe_b1_tok_s"] == 151.0
