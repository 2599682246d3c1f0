import torch

from engine.acestep.lm.constraints import Constraint, Spec
from engine.acestep.lm.decode import DecodeJob, decode, sample, sample_rows, top_p_filter
from engine.acestep.lm.sampling import row_keys


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    kept = torch.isfinite(top_p_filter(logits, 0.7))
    assert kept.tolist() == [True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.01)).sum() == 1
    assert torch.isfinite(top_p_filter(logits, None)).all()


def test_gumbel_sampling_follows_the_distribution():
    logits = torch.log(torch.tensor([0.6, 0.3, 0.1])).repeat(3000, 1)
    keys = row_keys(torch.full((3000,), 5), torch.zeros(3000, dtype=torch.long), torch.arange(3000))
    chosen = sample_rows(logits, torch.ones(3000), torch.ones(3000), keys)
    freq = torch.bincount(chosen, minlength=3).float() / 3000
    assert torch.allclose(freq, torch.tensor([0.6, 0.3, 0.1]), atol=0.04)
    assert sample(logits[0], 0.0, None, 5, 1) == 0
    assert sample(logits[0], 1.0, None, 5, 7) == int(chosen[7])  # one row = the same draw


def _code_job(planner, seed, target, guided=True):
    tok = planner.lm.tokenizer
    prompt = tok.encode("<|im_start|>user\nsong<|im_end|>\n").ids
    uncond = tok.encode("<|im_start|>user\nNO USER INPUT<|im_end|>\n").ids
    c = Constraint(planner.vocab, Spec("codes", target_codes=target))
    return DecodeJob(prompt, c, seed, uncond if guided else None, 2.0, max_new_tokens=target + 1, phase=1)


def test_batched_guided_decoding_equals_solo(tiny_planner):
    model, pad = tiny_planner.lm.model, tiny_planner.vocab.pad
    batch = decode(model, [_code_job(tiny_planner, 1, 60), _code_job(tiny_planner, 2, 25, guided=False)], pad)
    solo_a = decode(model, [_code_job(tiny_planner, 1, 60)], pad)
    solo_b = decode(model, [_code_job(tiny_planner, 2, 25, guided=False)], pad)
    assert batch == [solo_a[0], solo_b[0]]
    assert len(batch[0]) == 61 and len(batch[1]) == 26
    assert decode(model, [_code_job(tiny_planner, 3, 25)], pad) != solo_b


def test_guidance_changes_the_codes(tiny_planner):
    model, pad = tiny_planner.lm.model, tiny_planner.vocab.pad
    guided = decode(model, [_code_job(tiny_planner, 9, 30)], pad)[0]
    plain = decode(model, [_code_job(tiny_planner, 9, 30, guided=False)], pad)[0]
    assert guided != plain
