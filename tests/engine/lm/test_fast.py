import threading
from dataclasses import replace

import pytest

from engine.acestep.lm.constraints import Constraint, Spec
from engine.acestep.lm.decode import DecodeJob, decode
from engine.acestep.lm.fast import FastDecoder
from engine.acestep.lm.fast_engine import FastEngine
from engine.acestep.lm.graphs import StepGraphs, bucket
from engine.acestep.lm.planner import PlanRequest
from engine.acestep.lm.qwen3 import FastLM


@pytest.fixture(scope="module")
def engine(tiny_planner):
    fast = FastLM.from_hf(tiny_planner.lm.model, tiny_planner.lm.config)
    # A short attention-window step, so that the decodes below cross window buckets.
    return FastEngine(fast, tiny_planner.vocab, max_rows=8, len_step=16)


def _code_job(planner, seed, target, guided=True, topic="song", top_p=0.9):
    tok = planner.lm.tokenizer
    prompt = tok.encode(f"<|im_start|>user\n{topic}<|im_end|>\n").ids
    uncond = tok.encode("<|im_start|>user\nNO USER INPUT<|im_end|>\n").ids
    c = Constraint(planner.vocab, Spec("codes", target_codes=target))
    return DecodeJob(prompt, c, seed, uncond if guided else None, 2.0, 0.85, top_p, max_new_tokens=target + 1, phase=1)


# (seed, codes, guided, topic, top_p) per request; batches mix guidance, lengths and prompts.
CASES = [
    (1, 30, True, "song", 0.9),
    (2, 12, False, "a slow waltz", 0.9),
    (3, 21, True, "drums", None),
    (4, 7, True, "song", 0.5),
    (5, 17, False, "rain", 0.9),
]


def test_code_phase_equals_the_reference_loop_over_seeds_lengths_and_batches(tiny_planner, engine):
    model, pad = tiny_planner.lm.model, tiny_planner.vocab.pad
    reference = decode(model, [_code_job(tiny_planner, *case) for case in CASES], pad)
    assert engine.decode([_code_job(tiny_planner, *case) for case in CASES], "codes") == reference
    assert all(len(tokens) == case[1] + 1 for tokens, case in zip(reference, CASES, strict=True))
    # Alone, and in another batch in other rows: the same tokens.
    assert engine.decode([_code_job(tiny_planner, *CASES[2])], "codes") == [reference[2]]
    again = engine.decode([_code_job(tiny_planner, *CASES[k]) for k in (4, 0, 3)], "codes")
    assert again == [reference[4], reference[0], reference[3]]


def test_a_request_joins_a_running_decode_and_leaves_when_done(tiny_planner, engine):
    dec = engine.decoder("codes", True)
    late = _code_job(tiny_planner, 9, 14)
    seen: list[tuple[int, int]] = []

    def on_step(step: int) -> None:
        seen.append((step, sum(t is not None for t in dec.rows)))
        if step == 5:
            dec.submit(late)

    first = [_code_job(tiny_planner, 7, 8), _code_job(tiny_planner, 8, 25)]
    got = dec.decode(first, on_step)
    while not late.constraint.done:  # the late one finishes after the first two; keep driving
        dec.wait([])
    alone = decode(
        tiny_planner.lm.model,
        [_code_job(tiny_planner, s, n) for s, n in ((7, 8), (8, 25), (9, 14))],
        tiny_planner.vocab.pad,
    )
    assert [*got, late.tokens] == alone
    rows = dict(seen)
    assert rows[5] == 2 and rows[6] == 3  # joined at the next step
    assert rows[10] == 2  # the 8-code request left after 9 steps
    assert dec._bucket() == 0


def test_compaction_moves_rows_down_and_keeps_tokens(tiny_planner, engine):
    dec = engine.decoder("codes", False)
    jobs = [_code_job(tiny_planner, 20 + k, n, guided=False) for k, n in enumerate((3, 3, 3, 3, 9))]
    tickets = [dec.submit(job) for job in jobs]
    seen = []
    dec.wait(tickets, lambda step: seen.append((tickets[4].row, dec._bucket())))
    solo = decode(tiny_planner.lm.model, [_code_job(tiny_planner, 24, 9, guided=False)], tiny_planner.vocab.pad)
    assert jobs[4].tokens == solo[0]
    assert seen[0] == (4, 8) and seen[4] == (0, 1)  # after the four short ones left, it moved to row 0
    assert [bucket(n, 64) for n in (1, 2, 3, 5, 64, 100)] == [1, 2, 4, 8, 64, 64]


def test_graph_warm_up_is_undone_before_capture(tiny_planner):
    # On the CPU, rehearse what capture does: warm-up run, restore, then the real run.
    class Rehearse(StepGraphs):
        def run(self, key, fn, save=None, restore=None):
            if key not in self.graphs:
                state = save() if save else None
                fn()
                if restore:
                    restore(state)
                self.graphs[key] = True
            fn()

    fast = FastLM.from_hf(tiny_planner.lm.model, tiny_planner.lm.config)
    dec = FastDecoder(fast, tiny_planner.vocab, "codes", guided=True, len_step=16)
    dec.graphs = Rehearse(enabled=False)
    jobs = [_code_job(tiny_planner, *case) for case in CASES[:3]]
    reference = decode(
        tiny_planner.lm.model, [_code_job(tiny_planner, *case) for case in CASES[:3]], tiny_planner.vocab.pad
    )
    assert dec.decode(jobs) == reference


def test_concurrent_callers_decode_together_with_their_own_tokens(tiny_planner, engine):
    cases = [CASES[0], CASES[3]]
    results: dict[int, list[int]] = {}

    def call(k: int) -> None:
        results[k] = engine.decode([_code_job(tiny_planner, *cases[k])], "codes")[0]

    threads = [threading.Thread(target=call, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reference = decode(tiny_planner.lm.model, [_code_job(tiny_planner, *c) for c in cases], tiny_planner.vocab.pad)
    assert [results[0], results[1]] == reference


# Create-sample (metadata, then lyrics; unguided) and chain of thought (guided); the walks in
# test_constraints cover every phase's rules, including instrumentals.
PLAN_REQUESTS = [
    PlanRequest("lo-fi beat", seed=7, duration=10, bpm=84, keyscale="Eb major", lyrics="[Verse]\nla la la"),
    PlanRequest("a sad folk song about trains", seed=3, duration=10),
]


def test_planner_on_the_fast_path_makes_the_reference_plans(tiny_planner):
    settings = replace(tiny_planner.settings, top_p=0.9, caption_max=12, genres_max=4, lyrics_max=12)
    reference = replace(tiny_planner, settings=settings, fast=None)
    fast = replace(reference)
    fast.use_fast_path(len_step=16)
    plans = fast.plan(PLAN_REQUESTS)
    assert plans == reference.plan(PLAN_REQUESTS)
    assert fast.plan([PLAN_REQUESTS[1]]) == [plans[1]]  # alone: its code phase in row 0, not row 1


def test_release_frees_an_idle_decoder_and_the_next_decode_rebuilds_it(tiny_planner):
    fast = FastLM.from_hf(tiny_planner.lm.model, tiny_planner.lm.config)
    engine = FastEngine(fast, tiny_planner.vocab, len_step=16)
    first = engine.decode([_code_job(tiny_planner, *CASES[1])], "codes")
    dec = engine.decoder("codes", False)
    assert dec.rows_cap == 1 and dec.release() and not hasattr(dec, "keys")
    assert engine.decode([_code_job(tiny_planner, *CASES[1])], "codes") == first


def test_step_functions_never_read_back_to_the_host():
    # On the meta device a tensor has no data: .item(), .tolist(), bool(), nonzero() and boolean
    # indexing all raise. The step functions run there, so they hold no host synchronisation and
    # can be captured as CUDA graphs; tokens are read only outside them.
    import torch

    from engine.acestep.lm.constraints import Vocab
    from engine.acestep.lm.qwen3 import Geometry
    from engine.acestep.lm.tokenizer import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    geo = Geometry(hidden=64, layers=2, heads=4, kv_heads=2, head_dim=16, intermediate=128, vocab=tok.get_vocab_size())
    lm = FastLM.random(geo, "cpu", torch.float32)

    def meta(t: torch.Tensor) -> torch.Tensor:
        return torch.empty_like(t, device="meta")

    lm.embed = lm.head = meta(lm.embed)
    lm.norm, lm.cos, lm.sin, lm.device = meta(lm.norm), meta(lm.cos), meta(lm.sin), torch.device("meta")
    for layer in lm.layers:
        for name in ("norm1", "norm2", "qkv", "o", "qk_norm", "gate_up", "down"):
            setattr(layer, name, meta(getattr(layer, name)))
    vocab = Vocab.build(tok, geo.vocab)
    for phase in ("codes", "meta"):
        dec = FastDecoder(lm, vocab, phase, guided=True)
        dec._allocate(4, 64)
        dec._forward(4, 32)
        (dec._select_codes if phase == "codes" else dec._select_meta)(4)
        assert dec.tok.is_meta and dec.out.shape == (4, 256)  # lengths come in steps of 256
    with pytest.raises((RuntimeError, NotImplementedError)):
        bool(dec.live[0])  # what a host read would have done
