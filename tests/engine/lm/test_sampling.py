import math

import torch

from engine.acestep.lm.sampling import gumbel, hash32, pick, row_keys, token_salts, top_p_keep, top_p_keep_sorted


def _lowbias32(x: int) -> int:
    """An independent plain-Python lowbias32 (big integers, no overflow to avoid)."""
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    return x ^ (x >> 16)


def test_hash_matches_plain_integer_arithmetic_over_the_whole_range():
    values = [0, 1, 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, *range(1000, 300_000, 7919)]
    got = hash32(torch.tensor(values, dtype=torch.long)).tolist()
    assert got == [_lowbias32(v) for v in values]


def test_noise_is_keyed_by_seed_phase_step_and_token_not_by_width_or_row():
    seeds, phases, steps = torch.tensor([7, 7, 7, 8]), torch.tensor([1, 0, 1, 1]), torch.tensor([3, 3, 4, 3])
    keys = row_keys(seeds, phases, steps)
    full = gumbel(keys, torch.arange(5000))
    part = gumbel(keys[[2, 0]], torch.tensor([4999, 17, 1000]))
    assert torch.equal(part, full[[2, 0]][:, [4999, 17, 1000]])
    assert len({tuple(row.tolist()) for row in full}) == 4  # seed, phase and step each change the draw
    assert torch.equal(gumbel(row_keys(seeds, phases, steps), torch.arange(5000)), full)


def test_noise_is_gumbel_distributed():
    g = gumbel(row_keys(torch.arange(4), torch.zeros(4, dtype=torch.long), torch.arange(4)), torch.arange(50_000))
    assert torch.isfinite(g).all()
    assert abs(g.mean().item() - 0.5772) < 0.01  # Euler's constant
    assert abs(g.var().item() - math.pi**2 / 6) < 0.05
    u = torch.exp(-torch.exp(-g))  # back to uniforms: a flat histogram
    counts = torch.histc(u, bins=10, min=0.0, max=1.0)
    assert (counts / u.numel() - 0.1).abs().max() < 0.005


def test_top_p_by_threshold_equals_the_sorted_nucleus():
    gen = torch.Generator().manual_seed(0)
    for sharp in (0.3, 1.0, 3.0, 8.0):
        logits = torch.randn(16, 3000, generator=gen) * sharp
        logits[:4, 1000:] = float("-inf")  # masked rows, as in the constrained phases
        probs = torch.softmax(logits, -1)
        top_p = torch.rand(16, generator=gen) * 0.98 + 0.01
        top_p[-1] = 1.0
        assert torch.equal(top_p_keep(probs, top_p), top_p_keep_sorted(probs, top_p))


def test_top_p_keeps_the_top_token_and_ties_together():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05], [0.97, 0.01, 0.01, 0.01], [0.4, 0.2, 0.2, 0.2]])
    keep = top_p_keep(probs, torch.tensor([0.7, 0.01, 0.5]))
    assert keep.tolist() == [
        [True, True, False, False],
        [True, False, False, False],
        [True, True, True, True],  # 0.4 above each 0.2: within 0.5, so the whole tie is kept
    ]


def test_pick_samples_the_tempered_nucleus_and_is_greedy_at_zero():
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.08, 0.02]])).repeat(4000, 1)
    keys = row_keys(torch.full((4000,), 11), torch.ones(4000, dtype=torch.long), torch.arange(4000))
    ids = torch.arange(4)
    chosen = pick(logits, keys, token_salts(ids), torch.ones(4000), torch.full((4000,), 0.85))
    freq = torch.bincount(chosen, minlength=4).float() / 4000
    assert torch.allclose(freq, torch.tensor([0.6 / 0.9, 0.3 / 0.9, 0.0, 0.0]), atol=0.03)
    assert pick(logits[:3], keys[:3], token_salts(ids), torch.zeros(3), torch.ones(3)).tolist() == [0, 0, 0]


def _bisection_keep(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """The nucleus as the fast path found it before: bisection over float32 bit patterns (31 masked sums)."""
    bits = probs.view(torch.int32)
    hi, lo = bits.amax(-1), torch.zeros(probs.shape[0], dtype=torch.int32)
    for _ in range(31):
        mid = lo + (hi - lo) // 2
        ok = torch.where(probs > mid.view(torch.float32)[:, None], probs, 0.0).sum(-1) <= top_p
        hi, lo = torch.where(ok, mid, hi), torch.where(ok, lo, mid)
    return (bits >= hi[:, None]) | (top_p >= 1.0)[:, None]


def test_top_p_from_one_sort_is_the_nucleus_the_bisection_found():
    gen = torch.Generator().manual_seed(1)
    for sharp in (0.3, 1.0, 3.0, 8.0):
        logits = torch.randn(32, 4000, generator=gen) * sharp
        logits[:6, 2000:] = float("-inf")
        logits[6:12] = logits[6:12].round()  # many ties, some straddling the boundary
        probs = torch.softmax(logits, -1)
        top_p = torch.rand(32, generator=gen) * 0.98 + 0.01
        top_p[-1] = 1.0
        assert torch.equal(top_p_keep(probs, top_p), _bisection_keep(probs, top_p))
