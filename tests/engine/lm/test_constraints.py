import json

import pytest
import torch

from engine.acestep.lm.constraints import DECIDE, FIELD_ORDER, KEYSCALES, LANGUAGES, Constraint, Spec, Vocab
from engine.acestep.lm.plan import parse_codes, parse_metadata, split_output
from engine.acestep.lm.tokenizer import build_tiny_tokenizer


@pytest.fixture(scope="module")
def facts(facts_dir):
    return json.loads((facts_dir / "constraints.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def real_vocab(official_tokenizer):
    return Vocab.build(official_tokenizer, duration_max=600)


@pytest.fixture(scope="module")
def tiny_vocab():
    return Vocab.build(build_tiny_tokenizer(), duration_max=120)


def test_value_sets_are_the_official_ones(facts):
    sets = facts["value_sets"]
    assert sorted(KEYSCALES) == sorted(sets["keyscale"]["values"])
    assert list(LANGUAGES) == sets["language"]["values"]


def test_real_token_tables_match_the_official_fsm(facts, real_vocab):
    fixed = facts["cot_format"]["fsm_fixed_strings"]
    for name in ("bpm", "caption", "duration", "genres", "keyscale", "language"):
        assert real_vocab.names[name] == fixed[f"{name.upper()}_NAME"]["forced_token_ids"]
    assert real_vocab.names["timesignature"] == fixed["TIMESIG_NAME"]["forced_token_ids"]
    assert real_vocab.names["bpm"] == [17808, 76, 25]
    fsm = facts["fsm"]
    for key, spec in fsm["keyscale"]["value_tokens"].items():
        assert real_vocab.value_ids(key) == spec["token_ids"]
    for lang, spec in fsm["language"]["value_tokens"].items():
        assert real_vocab.value_ids(lang) == spec["token_ids"]
    for examples in fsm["numeric_examples"].values():
        for value, spec in examples.items():
            assert real_vocab.value_ids(value) == spec["token_ids"]
    for name, spec in fsm["user_metadata_injection"]["examples"].items():
        c = Constraint(real_vocab, Spec("meta", fields=(name,), given={name: spec["value"]}))
        seq = _walk(c, torch.Generator().manual_seed(0), real_vocab.size)
        assert seq[2 + len(real_vocab.names[name]) :][: len(spec["token_ids"])] == spec["token_ids"]


def _complete_values(node, depth=0):
    count = 1 if node.end else 0
    return count + sum(_complete_values(child, depth + 1) for child in node.children.values())


def test_numeric_trees_have_the_official_sizes(real_vocab):
    assert _complete_values(real_vocab.trees["bpm"]) == 271
    assert _complete_values(real_vocab.trees["duration"]) == 591
    assert _complete_values(real_vocab.trees["timesignature"]) == 4


def _walk(constraint: Constraint, gen: torch.Generator, size: int, limit: int = 5000) -> list[int]:
    """Sample from random logits under the constraint until it is done."""
    out: list[int] = []
    while not constraint.done and len(out) < limit:
        logits = torch.randn(size, generator=gen) * 4
        masked = constraint.mask(logits)
        probs = torch.softmax(masked, dim=-1)
        token = int(torch.multinomial(probs, 1, generator=gen))
        constraint.advance(token)
        out.append(token)
    assert constraint.done
    return out


def _valid_meta(meta: dict, fields) -> None:
    assert list(meta) == list(fields)
    if "bpm" in meta:
        assert isinstance(meta["bpm"], int) and 30 <= meta["bpm"] <= 300
    if "duration" in meta:
        assert isinstance(meta["duration"], int) and 10 <= meta["duration"] <= 120
    if "keyscale" in meta:
        assert meta["keyscale"] in KEYSCALES
    if "language" in meta:
        assert meta["language"] in LANGUAGES
    if "timesignature" in meta:
        assert meta["timesignature"] in (2, 3, 4, 6)
    if "caption" in meta:
        assert meta["caption"] and "<|" not in meta["caption"]


@pytest.mark.parametrize("seed", range(12))
def test_random_logits_always_give_valid_metadata(tiny_vocab, seed):
    tok = tiny_vocab.tokenizer
    fields = ("bpm", "caption", "duration", "genres", "keyscale", "language", "timesignature")
    spec = Spec("meta_text", fields=fields, caption_max=40, genres_max=8, text_max=30)
    ids = _walk(Constraint(tiny_vocab, spec), torch.Generator().manual_seed(seed), tiny_vocab.size)
    assert ids[0] == tiny_vocab.think_open and ids[-1] == tiny_vocab.eos
    text = tok.decode(ids, skip_special_tokens=False)
    meta, lyrics = split_output(text)
    assert "<|" not in lyrics
    _valid_meta(meta, fields)
    assert not parse_codes(text)


def test_given_fields_are_forced_and_phase_one_stops_without_think_close(tiny_vocab):
    given = {"bpm": 84, "duration": 60, "keyscale": "Eb major", "timesignature": "4", "language": "no"}
    c = Constraint(tiny_vocab, Spec("meta", given=given, caption_max=20))
    ids = _walk(c, torch.Generator().manual_seed(3), tiny_vocab.size)
    assert tiny_vocab.think_close not in ids and ids[-1] == tiny_vocab.eos
    meta = parse_metadata(tiny_vocab.tokenizer.decode(ids, skip_special_tokens=False))
    assert {k: meta[k] for k in given} == {**given, "timesignature": 4}


@pytest.mark.parametrize("target", [1, 50, 137])
def test_code_phase_gives_exactly_the_target_codes(tiny_vocab, target):
    c = Constraint(tiny_vocab, Spec("codes", target_codes=target))
    ids = _walk(c, torch.Generator().manual_seed(target), tiny_vocab.size)
    assert ids[-1] == tiny_vocab.eos
    assert len(ids) == target + 1 and all(tiny_vocab.is_code(t) for t in ids[:-1])
    assert all(0 <= n <= 63999 for n in parse_codes(tiny_vocab.tokenizer.decode(ids, skip_special_tokens=False)))


def test_eos_is_masked_until_the_target_then_forced(tiny_vocab):
    c = Constraint(tiny_vocab, Spec("codes", target_codes=2))
    logits = torch.zeros(tiny_vocab.size)
    logits[tiny_vocab.eos] = 100.0
    assert c.mask(logits)[tiny_vocab.eos] == float("-inf")
    c.advance(tiny_vocab.code0)
    c.advance(tiny_vocab.code0 + 63999)
    masked = c.mask(logits)
    assert torch.isfinite(masked).sum() == 1 and masked[tiny_vocab.eos] == 100.0
    with pytest.raises(ValueError):
        c.advance(tiny_vocab.code0)


def test_states_are_independent(tiny_vocab):
    a = Constraint(tiny_vocab, Spec("codes", target_codes=3))
    b = Constraint(tiny_vocab, Spec("codes", target_codes=3))
    for _ in range(3):
        a.advance(tiny_vocab.code0)
    assert a.kind == "codes" and a.count == 3 and b.count == 0
    assert torch.isfinite(b.mask(torch.zeros(tiny_vocab.size))).sum() == 64000


def _by_rule(rule, logits: torch.Tensor, vocab: Vocab) -> int:
    """The fast path's choice under a Rule, with argmax standing in for sampling."""
    from engine.acestep.lm.constraints import DECIDE, FORCED, SAMPLE_BAN, SAMPLE_IDS, TOP1_IDS

    if rule.mode == FORCED:
        return rule.token
    if rule.mode in (SAMPLE_IDS, TOP1_IDS):
        ids = torch.tensor(rule.ids)
        return int(ids[logits[ids].argmax()])
    top = int(logits.masked_fill(vocab.ban_mask(rule.ban), float("-inf")).argmax())
    if rule.mode == SAMPLE_BAN:
        return top
    assert rule.mode == DECIDE
    return top if bool(vocab.continues[top]) else rule.token


@pytest.mark.parametrize(
    ("vocab_name", "phase", "walks"),
    [
        ("tiny_vocab", "meta_text", 12),
        ("tiny_vocab", "meta", 12),
        ("tiny_vocab", "meta_only", 12),
        ("real_vocab", "meta_text", 3),
    ],
)
def test_rules_choose_what_the_reference_masks_allow(request, vocab_name, phase, walks):
    # Every step of many random walks: the Rule (what the fast path gets) and allowed()/free_ban()
    # (what the reference loop uses) pick the same token for the same logits, and both machines agree.
    vocab = request.getfixturevalue(vocab_name)
    gen = torch.Generator().manual_seed(len(phase))
    decisions = 0
    for walk in range(walks):
        spec = Spec(
            phase,
            fields=FIELD_ORDER if phase != "meta" else ("bpm", "caption", "duration"),
            given={"bpm": 90} if walk % 3 == 0 else {},
            caption_max=12,
            genres_max=4,
            text_max=8,
            duration_max=60,
        )
        ref, fast = Constraint(vocab, spec), Constraint(vocab, spec)
        while not ref.done:
            logits = torch.randn(vocab.size, generator=gen)
            # Newline-ending and indented tokens often, so that caption lines end and continue.
            logits[vocab.ends_newline] += 2.0
            logits[vocab.continues] += 1.0
            rule = fast.rule()
            decisions += rule.mode == DECIDE
            expected = int(ref.mask(logits).argmax())
            assert _by_rule(rule, logits, vocab) == expected
            ref.advance(expected)
            fast.advance(expected, rule)
        assert fast.done
    if phase != "meta_only":
        assert decisions > 0  # caption-line decisions were exercised
