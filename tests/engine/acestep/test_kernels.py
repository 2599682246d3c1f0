import torch
import torch.nn.functional as F

from engine.acestep.kernels import count_kernels, dit_step_kernels, dit_step_ops, lm_step_kernels, lm_step_ops


def _meta(*shape: int) -> torch.Tensor:
    return torch.empty(*shape, device="meta", dtype=torch.bfloat16)


def test_views_are_free_and_a_fused_call_counts_once():
    x, w = _meta(4, 64), _meta(64)
    assert sum(count_kernels(lambda: x.t().reshape(256)).values()) == 1  # a reshape that must copy
    views = count_kernels(lambda: x.view(2, 2, 64).transpose(0, 1).unsqueeze(0)[..., :8].detach().expand(3, -1, -1, -1))
    assert sum(views.values()) == 0
    assert count_kernels(lambda: F.rms_norm(x, (64,), w, 1e-6)) == {"rms_norm": 1}
    q = _meta(1, 4, 8, 16)
    assert count_kernels(lambda: F.scaled_dot_product_attention(q, q, q)) == {"scaled_dot_product_attention": 1}
    assert count_kernels(lambda: (x.float() * 2).sum(-1)) == {"_to_copy": 1, "mul": 1, "sum": 1}


def test_the_planners_code_step_of_the_1_7b_geometry_launches_at_most_500_kernels():
    ops = lm_step_ops("1.7B", 1, True, "codes")
    assert ops["sort"] == 1  # the nucleus comes from one sort, not a bisection
    assert sum(ops.values()) == lm_step_kernels("1.7B", 1, True) <= 500


def test_the_step_launches_as_many_kernels_for_eight_requests_and_fewer_without_guidance():
    one = lm_step_kernels("1.7B", 1, True)
    assert lm_step_kernels("1.7B", 8, True) == one
    assert lm_step_kernels("1.7B", 1, False) < one  # no guidance mix


def test_a_dit_step_launches_fewer_kernels_than_with_the_decomposed_norms():
    # Before the fused RMSNorm, the one-roll rotary and the band mask made once per step: 2,142 kernels
    # (30 s, batch 1), 2,385 (180 s: windows block by block) and 2,565 (180 s, batch 8), counted the same way.
    assert dit_step_kernels("2B", 1, 30.0) <= 1300
    assert dit_step_kernels("2B", 1, 180.0) <= 1350
    assert dit_step_kernels("2B", 8, 180.0) <= 1400
    assert dit_step_ops("2B", 1, 30.0)["rms_norm"] == 24 * 6 + 1  # every norm is one fused call
