"""Constrained decoding for the 5 Hz LM: one small state machine per request.

The official ``MetadataConstrainedLogitsProcessor`` is one stateful object per handler, so
concurrent or batched requests share its state. Here :class:`Vocab` holds the read-only
token tables (built once per tokenizer) and :class:`Constraint` holds one request's state;
a batch simply has one ``Constraint`` per request.

What the machine enforces (``constraints.json`` in the conformance kit):
- ``<think>`` and the YAML skeleton in the official field order, field names forced as the
  longest single-token prefixes of the remaining text (``bpm:`` is ``bp``, ``m``, ``:``);
- bpm 30-300, duration within the configured range, time signature in {2, 3, 4, 6}, keys
  and languages from the official lists (prefix trees over token ids; the language's first
  token is the top-1 candidate, as upstream); user-given fields forced as given;
- free captions and lyrics without audio codes or control tokens;
- in the code phase only codes 0-63999, then end-of-sequence exactly after the target count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from tokenizers import Tokenizer

from engine.acestep.lm.tokenizer import EOS, PAD, VALID_CODES, code_token, encode, token_id
from engine.acestep.lm.values import (
    BPM_RANGE,
    DURATION_MIN,
    FIELD_ORDER,
    KEYSCALES,
    LANGUAGES,
    TIME_SIGNATURES,
)

NEG_INF = float("-inf")

# Modes of a :class:`Rule` (what the fast path does with a row at one step).
FORCED, SAMPLE_IDS, SAMPLE_BAN, TOP1_IDS, DECIDE = range(5)


@dataclass(frozen=True)
class Rule:
    """What one request's next token may be, decided without its logits (the fast path's input).

    Modes: ``FORCED`` (``token``); ``SAMPLE_IDS`` (sample among ``ids``); ``SAMPLE_BAN`` (sample
    with the ban mask ``ban``, see :meth:`Vocab.ban_mask`); ``TOP1_IDS`` (the most likely of
    ``ids``, upstream's rule for the first language token); ``DECIDE`` (after a caption line:
    the most likely token under the ``ban`` mask when :attr:`Vocab.continues` marks it as an
    indented continuation, else ``token``, the first token of the next field).
    """

    mode: int
    token: int = -1
    ids: tuple[int, ...] = ()
    ban: str = ""


def _byte_decoder() -> dict[str, int]:
    """The inverse of the GPT-2 byte-to-unicode map used by byte-level BPE."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


class Trie:
    """A prefix tree over token-id sequences; ``end`` marks a complete sequence."""

    def __init__(self) -> None:
        self.children: dict[int, Trie] = {}
        self.end = False

    def add(self, ids: Sequence[int]) -> None:
        """Insert one token sequence."""
        node = self
        for token in ids:
            node = node.children.setdefault(token, Trie())
        node.end = True


@dataclass(frozen=True)
class Vocab:
    """Read-only token tables for one tokenizer (shared by every request)."""

    tokenizer: Tokenizer
    size: int
    eos: int
    pad: int
    think_open: int
    think_close: int
    newline: int
    code0: int
    has_newline: torch.Tensor
    ends_newline: torch.Tensor
    bad_newline: torch.Tensor
    starts_ws: torch.Tensor
    ban_free: torch.Tensor
    code_ids: torch.Tensor
    trees: dict[str, Trie] = field(default_factory=dict)
    names: dict[str, list[int]] = field(default_factory=dict)
    bans: dict[str, torch.Tensor] = field(default_factory=dict)

    BAN_KEYS = (
        "caption",
        "caption:first",
        "caption:max",
        "genres",
        "genres:first",
        "genres:max",
        "text",
        "text:max",
        "codes",
        "codes+eos",
    )

    @property
    def continues(self) -> torch.Tensor:
        """Tokens that continue a caption on a new line: space-led, without a newline."""
        return self.starts_ws & ~self.has_newline

    def ban_mask(self, key: str) -> torch.Tensor:
        """The banned-token mask of one free-text state (``BAN_KEYS``), cached."""
        if key not in self.bans:
            self.bans[key] = self._ban(key)
        return self.bans[key]

    def _ban(self, key: str) -> torch.Tensor:
        kind, _, variant = key.partition(":")
        ban = self.ban_free | self.bad_newline
        if kind.startswith("codes"):
            ban = torch.ones_like(ban)
            ban[self.code_ids] = False
            ban[self.eos] = kind != "codes+eos"
        elif variant == "max":
            ban = torch.ones_like(ban)
            ban[self.eos if kind == "text" else self.newline] = False
        elif kind == "caption" and variant == "first":
            # The value opens with a space-led token ("caption: An ..."), never a newline.
            ban = ban | self.has_newline | ~self.starts_ws
        elif kind == "genres":
            ban = ban | self.has_newline
            ban[self.newline] = variant == "first"
            if variant == "first":
                ban |= ~self.starts_ws
        elif kind == "text":
            ban = ban.clone()
            ban[self.eos] = False
        return ban

    def max_choices(self) -> int:
        """The most children any value-tree node has (the width of the fast path's id lists)."""
        most, todo = 1, list(self.trees.values())
        while todo:
            node = todo.pop()
            most = max(most, len(node.children))
            todo.extend(node.children.values())
        return most

    @classmethod
    def build(cls, tok: Tokenizer, vocab_size: int | None = None, duration_max: int = 600) -> Vocab:
        """Build the tables.

        Args:
            tok: The LM tokenizer.
            vocab_size: The model's logit width (may exceed the tokenizer's size).
            duration_max: The largest duration in seconds the machine may write.
        """
        size = vocab_size or tok.get_vocab_size()
        has_nl = torch.zeros(size, dtype=torch.bool)
        bad_nl = torch.zeros(size, dtype=torch.bool)
        ends_nl = torch.zeros(size, dtype=torch.bool)
        starts_ws = torch.zeros(size, dtype=torch.bool)
        ban = torch.ones(size, dtype=torch.bool)
        decoder = _byte_decoder()
        added = tok.get_added_tokens_decoder()
        for token, idx in tok.get_vocab(with_added_tokens=True).items():
            if idx in added or idx >= size:
                continue
            text = bytes(decoder.get(ch, 0x3F) for ch in token).decode("utf-8", errors="replace")
            ban[idx] = token == "`"
            starts_ws[idx] = text[:1] in (" ", "\t")
            if "\r" in text:
                bad_nl[idx] = True  # the LM's YAML uses "\n" only; a lone "\r" would blur lines
            if "\n" in text:
                has_nl[idx] = True
                ends_nl[idx] = text.endswith("\n")
                bad_nl[idx] |= bool(text.rsplit("\n", 1)[-1].strip())
        code0 = token_id(tok, code_token(0))
        vocab = cls(
            tokenizer=tok,
            size=size,
            eos=token_id(tok, EOS),
            pad=token_id(tok, PAD),
            think_open=token_id(tok, "<think>"),
            think_close=token_id(tok, "</think>"),
            newline=encode(tok, "\n")[0],
            code0=code0,
            has_newline=has_nl,
            ends_newline=ends_nl,
            bad_newline=bad_nl,
            starts_ws=starts_ws,
            ban_free=ban,
            code_ids=torch.arange(code0, code0 + VALID_CODES),
        )
        vocab._build_trees(duration_max)
        return vocab

    def forced(self, text: str) -> list[int]:
        """Tokens for fixed text: each the longest prefix of the rest that is one token."""
        out: list[int] = []
        i = 0
        while i < len(text):
            for j in range(len(text), i, -1):
                ids = encode(self.tokenizer, text[i:j])
                if len(ids) == 1:
                    out.append(ids[0])
                    i = j
                    break
            else:
                raise ValueError(f"no single token starts {text[i:]!r}")
        return out

    def value_ids(self, value: Any) -> list[int]:
        """The tokens of a field value as written after ``name:`` (a leading space)."""
        return encode(self.tokenizer, f" {value}")

    def _build_trees(self, duration_max: int) -> None:
        values: dict[str, Sequence[Any]] = {
            "bpm": range(BPM_RANGE[0], BPM_RANGE[1] + 1),
            "duration": range(DURATION_MIN, duration_max + 1),
            "timesignature": TIME_SIGNATURES,
            "keyscale": KEYSCALES,
            "language": LANGUAGES,
        }
        for name, options in values.items():
            tree = Trie()
            for value in options:
                tree.add([*self.value_ids(value), self.newline])
            self.trees[name] = tree
        for name in FIELD_ORDER:
            self.names[name] = self.forced(f"{name}:")

    def duration_tree(self, duration_max: int) -> Trie:
        """The duration prefix tree for ``10..duration_max`` (cached per maximum)."""
        key = f"duration<={duration_max}"
        if key not in self.trees:
            tree = Trie()
            for value in range(DURATION_MIN, duration_max + 1):
                tree.add([*self.value_ids(value), self.newline])
            self.trees[key] = tree
        return self.trees[key]

    def is_code(self, token: int) -> bool:
        """Whether ``token`` is a valid audio code (0..63999)."""
        return self.code0 <= token < self.code0 + VALID_CODES


@dataclass(frozen=True)
class Spec:
    """What one request's decoding must produce.

    Args:
        phase: ``meta`` (CoT metadata, then end-of-sequence instead of ``</think>``),
            ``meta_text`` (metadata, ``</think>``, then free text such as lyrics),
            ``meta_only`` (metadata, ``</think>``, then end-of-sequence) or ``codes``.
        fields: Metadata fields in order (a subset of the official order).
        given: Values the user fixed; they are forced token by token.
        target_codes: Code phase: exact number of codes before end-of-sequence.
        caption_max: Caption tokens before a newline is forced (upstream 512).
        genres_max: Genres tokens before a newline is forced.
        text_max: Free-text tokens before end-of-sequence is forced.
        duration_max: A lower duration maximum for this request (e.g. what fits the context).
    """

    phase: str
    fields: tuple[str, ...] = ("bpm", "caption", "duration", "keyscale", "language", "timesignature")
    given: Mapping[str, Any] = field(default_factory=dict)
    target_codes: int | None = None
    caption_max: int = 512
    genres_max: int = 64
    text_max: int = 1024
    duration_max: int | None = None


class Constraint:
    """One request's decoding state: call :meth:`mask` on its logits, then :meth:`advance`."""

    def __init__(self, vocab: Vocab, spec: Spec) -> None:
        self.vocab = vocab
        self.spec = spec
        self.segments: list[tuple[str, Any]] = self._plan_segments()
        self.count = 0
        self.node: Trie | None = None
        self.line_end = False
        self.done = False
        self._enter()

    def _plan_segments(self) -> list[tuple[str, Any]]:
        v, spec = self.vocab, self.spec
        if spec.phase == "codes":
            return [("codes", None)]
        segs: list[tuple[str, Any]] = [("fixed", [v.think_open, v.newline])]
        for name in spec.fields:
            segs.append(("fixed", list(v.names[name])))
            if name in spec.given:
                segs.append(("fixed", encode(v.tokenizer, f" {spec.given[name]}\n")))
            elif name in v.trees:
                segs.append(("tree", name))
            else:
                segs.append((name, None))
        if spec.phase == "meta":
            segs.append(("fixed", [v.eos]))
        elif spec.phase == "meta_only":
            segs.append(("fixed", [v.think_close, v.eos]))
        else:
            segs += [("fixed", [v.think_close]), ("text", None)]
        return segs

    @property
    def kind(self) -> str:
        """The current segment's kind."""
        return self.segments[0][0] if self.segments else "done"

    def _enter(self) -> None:
        self.count = 0
        self.line_end = False
        if self.kind == "tree":
            name = self.segments[0][1]
            if name == "duration" and self.spec.duration_max is not None:
                self.node = self.vocab.duration_tree(self.spec.duration_max)
            else:
                self.node = self.vocab.trees[name]
        if not self.segments:
            self.done = True

    def _next_segment(self) -> None:
        self.segments.pop(0)
        self._enter()

    def allowed_tokens(self, logits: torch.Tensor) -> torch.Tensor | None:
        """Token ids allowed now, or None when a ban mask applies instead (free text)."""
        v = self.vocab
        kind, arg = self.segments[0]
        if kind == "fixed":
            return torch.tensor([arg[self.count]])
        if kind == "tree":
            assert self.node is not None
            ids = torch.tensor(sorted(self.node.children))
            if arg == "language" and self.count == 0:
                # Upstream forces the top-1 language start rather than sampling it.
                return ids[int(logits[ids.to(logits.device)].argmax())].reshape(1)
            return ids
        if kind == "codes":
            target = self.spec.target_codes
            if target is not None and self.count >= target:
                return torch.tensor([v.eos])
            if target is not None:
                return v.code_ids
            return torch.cat([v.code_ids, torch.tensor([v.eos])])
        return None

    def allowed(self, logits: torch.Tensor) -> torch.Tensor | None:
        """The token ids allowed now, or None for free text (then use :meth:`free_ban`).

        ``logits`` (one row, after guidance) is read only where upstream decides by the
        top-1 token: the first language token and whether a caption line continues.
        """
        while True:
            kind = self.kind
            if kind == "done":
                return torch.tensor([self.vocab.eos])
            if kind == "caption" and self.line_end:
                forced = self._caption_line_decision(logits)
                if forced is None:
                    self._next_segment()
                    continue
                return torch.tensor([forced])
            return self.allowed_tokens(logits)

    def free_ban(self) -> torch.Tensor:
        """The banned-token mask of the current free-text segment."""
        return self._free_ban(self.kind)

    def rule(self) -> Rule:
        """What the next token may be, as a :class:`Rule` (the same choices as :meth:`allowed`)."""
        v = self.vocab
        while True:
            kind = self.kind
            if kind == "done":
                return Rule(FORCED, token=v.eos)
            arg = self.segments[0][1]
            if kind == "caption" and self.line_end:
                if self.count >= self.spec.caption_max:
                    self._next_segment()
                    continue
                following = self.segments[1]
                assert following[0] == "fixed", "a caption is always followed by fixed tokens"
                return Rule(DECIDE, token=following[1][0], ban="caption")
            if kind == "fixed":
                return Rule(FORCED, token=arg[self.count])
            if kind == "tree":
                assert self.node is not None
                mode = TOP1_IDS if arg == "language" and self.count == 0 else SAMPLE_IDS
                return Rule(mode, ids=tuple(sorted(self.node.children)))
            if kind == "codes":
                target = self.spec.target_codes
                if target is not None and self.count >= target:
                    return Rule(FORCED, token=v.eos)
                return Rule(SAMPLE_BAN, ban="codes" if target is not None else "codes+eos")
            return Rule(SAMPLE_BAN, ban=self._ban_key(kind))

    def _ban_key(self, kind: str) -> str:
        limit = {"caption": self.spec.caption_max, "genres": self.spec.genres_max, "text": self.spec.text_max}[kind]
        if self.count >= limit:
            return f"{kind}:max"
        if self.count == 0 and kind in ("caption", "genres"):
            return f"{kind}:first"
        return kind

    def mask(self, logits: torch.Tensor) -> torch.Tensor:
        """Return a copy of one row of logits with every disallowed token at -inf."""
        ids = self.allowed(logits)
        if ids is None:
            return logits.masked_fill(self.free_ban().to(logits.device), NEG_INF)
        out = torch.full_like(logits, NEG_INF)
        ids = ids.to(logits.device)
        out[ids] = logits[ids]
        return out

    def _caption_line_decision(self, logits: torch.Tensor) -> int | None:
        """After a caption line: continue when the top token is indented, else end the caption."""
        if self.count >= self.spec.caption_max:
            return None
        masked = logits.masked_fill(self._free_ban("caption").to(logits.device), NEG_INF)
        top = int(masked.argmax())
        return top if bool(self.vocab.starts_ws[top]) and not bool(self.vocab.has_newline[top]) else None

    def _free_ban(self, kind: str) -> torch.Tensor:
        return self.vocab.ban_mask(self._ban_key(kind))

    def advance(self, token: int, rule: Rule | None = None) -> None:
        """Record the token that was sampled for this request.

        ``rule`` is the :meth:`rule` the token was chosen under, when it came from the fast
        path: after a ``DECIDE`` step its fallback token means that the caption ended.
        """
        if self.done:
            return
        if rule is not None and rule.mode == DECIDE and token == rule.token:
            self._next_segment()
        v = self.vocab
        kind, arg = self.segments[0]
        self.count += 1
        if kind == "fixed":
            if token != arg[self.count - 1]:
                raise ValueError(f"token {token} is not the forced {arg[self.count - 1]}")
            if token == v.eos:
                self.segments.clear()
                self._enter()
            elif self.count == len(arg):
                self._next_segment()
        elif kind == "tree":
            assert self.node is not None
            if token not in self.node.children:
                raise ValueError(f"token {token} is not a valid {arg} value token here")
            self.node = self.node.children[token]
            if not self.node.children:
                self._next_segment()
        elif kind == "codes":
            target, before = self.spec.target_codes, self.count - 1
            if token == v.eos:
                if target is not None and before != target:
                    raise ValueError(f"end of sequence after {before} of {target} codes")
            elif not v.is_code(token) or (target is not None and before >= target):
                raise ValueError(f"token {token} is not an allowed audio code here")
            if token == v.eos:
                self.segments.clear()
                self._enter()
        elif kind == "caption":
            # A token ending in a newline closes the line; "\n  " style tokens already indent it.
            self.line_end = bool(v.ends_newline[token])
        elif kind == "genres":
            if token == v.newline:
                self._next_segment()
        elif kind == "text" and token == v.eos:
            self.segments.clear()
            self._enter()
