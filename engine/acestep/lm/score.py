r"""How well a finished take matches its request, scored the official way by the 5 Hz LM.

A port of the official ``acestep/test_time_scaling.py`` (``calculate_pmi_score_per_condition`` and
``calculate_reward_score``, ACE-Step 1.5 @ f30aee4). The LM reads the take's audio codes in its
understand mode and is asked how likely the request is, given those codes:

- each metadata field (bpm, duration, keyscale, language, timesignature): the top-k recall of the
  field's CoT text (``<think>\nbpm: 120\n</think>\n``), rank-weighted (rank 1 = 1.0);
- the caption and the lyrics: the mean log-probability of their text given the codes minus that given
  the literal codes ``NO USER INPUT`` (pointwise mutual information), squashed by a sigmoid;
- the total: caption 0.5, lyrics 0.3, the metadata fields' mean 0.2, renormalised over the
  conditions present (an instrumental has no lyrics).

Every target is its own teacher-forced forward pass over prompt + target, as upstream's, so the
numbers equal upstream's (the conformance kit ``tests/data/conformance/acestep_scoring/`` pins them).
Upstream calls this with the Gradio UI's "score sensitivity" (``score_scale`` 0.5) and top-10; so
do we. The planner keeps no ``genres`` in its plan, so that field is never scored.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from engine.acestep.lm.model import LoadedLM
from engine.acestep.lm.plan import codes_to_string
from engine.acestep.lm.prompts import DEFAULT_NEGATIVE
from engine.protocol import GeneratedTrack, TrackRequest
from storage.contract.results import TakeScore
from storage.contract.spec import Plan

# Upstream's defaults: the UI's score sensitivity, the recall's k, the reward's weights.
SCORE_SCALE = 0.5
TOPK = 10
WEIGHTS = {"caption": 0.50, "lyrics": 0.30, "metadata": 0.20}
# The fields scored by recall, in upstream's order (the order of the sums matters for exact equality).
RECALL_FIELDS = ("bpm", "duration", "genres", "keyscale", "language", "timesignature")
PMI_FIELDS = ("caption",)


def pmi_to_normalized(pmi: float, scale: float = SCORE_SCALE) -> float:
    """Upstream's ``pmi_to_normalized_score``: sigmoid(PMI / scale), 0.5 for no information."""
    return 1.0 / (1.0 + math.exp(-pmi / scale))


def field_target(name: str, value: Any) -> str:
    r"""The CoT text of one field, as upstream dumps it (``<think>\nbpm: 120\n</think>\n``)."""
    body = yaml.dump({name: value}, allow_unicode=True, sort_keys=True).strip()
    return f"<think>\n{body}\n</think>\n"


def lyrics_target(lyrics: str) -> str:
    """The lyrics after an empty CoT, as upstream scores them."""
    return f"<think>\n</think>\n# Lyric\n{lyrics}\n"


def combine(scores: Mapping[str, float]) -> float:
    """Upstream's ``calculate_reward_score`` with its default weights.

    The metadata fields are averaged into one score first, so that many fields do not outweigh the
    caption; the weights of the conditions present are renormalised to sum to 1.

    Args:
        scores: Per condition, in upstream's insertion order (recall fields, caption, lyrics).

    Returns:
        The total in 0..1; 0.0 when nothing was scored.
    """
    meta = [value for key, value in scores.items() if key not in ("caption", "lyrics")]
    active: dict[str, tuple[float, float]] = {}
    if "caption" in scores:
        active["caption"] = (scores["caption"], WEIGHTS["caption"])
    if "lyrics" in scores:
        active["lyrics"] = (scores["lyrics"], WEIGHTS["lyrics"])
    if meta:
        active["metadata"] = (sum(meta) / len(meta), WEIGHTS["metadata"])
    total_weight = sum(weight for _, weight in active.values())
    if total_weight == 0:
        return 0.0
    total = 0.0
    for _, (score, weight) in sorted(active.items(), key=lambda item: item[1][1], reverse=True):
        total += score * (weight / total_weight)
    return total


def plan_metadata(plan: Plan, caption: str) -> dict[str, Any]:
    """A plan's metadata as upstream's scorer gets it from the LM's CoT (``parse_lm_output``).

    bpm and duration are ints, the time signature the text the LM wrote (``'4'``), the caption the final one.
    """
    values: dict[str, Any] = {
        "bpm": plan.bpm,
        "duration": round(plan.duration_s) if plan.duration_s is not None else None,
        "keyscale": plan.key,
        "language": plan.language or None,
        "timesignature": str(plan.time_signature) if plan.time_signature is not None else None,
        "caption": plan.caption or caption,
    }
    return {key: value for key, value in values.items() if value is not None}


@dataclass(frozen=True)
class Scored:
    """One take's scores: per condition (upstream's names) and the combined total."""

    conditions: dict[str, float]
    total: float


class Scorer:
    """Scores takes with a loaded 5 Hz LM (the planner's own model; no weights are loaded twice)."""

    def __init__(self, lm: LoadedLM, scale: float = SCORE_SCALE, topk: int = TOPK) -> None:
        self.lm = lm
        self.scale = scale
        self.topk = topk

    def score(self, codes: Sequence[int], lyrics: str, metadata: Mapping[str, Any]) -> Scored:
        """Score audio codes against the lyrics and metadata (caption included) they were made for.

        Args:
            codes: The take's 5 Hz audio codes.
            lyrics: The lyrics sung ("" for an instrumental: not scored).
            metadata: Upstream's names (``plan_metadata``); ``caption`` is scored by PMI, the rest by recall.
        """
        prompt = self.lm.prompts.understand(codes_to_string(list(codes)))
        # Upstream's unconditional prompt puts the words "NO USER INPUT" where the codes were.
        unconditional = self.lm.prompts.understand(DEFAULT_NEGATIVE)
        scores: dict[str, float] = {}
        for key in RECALL_FIELDS:
            if metadata.get(key) is not None:
                scores[key] = self.recall(prompt, field_target(key, metadata[key]))
        for key in PMI_FIELDS:
            if metadata.get(key) is not None:
                scores[key] = self.pmi(prompt, unconditional, field_target(key, metadata[key]))
        if lyrics:
            scores["lyrics"] = self.pmi(prompt, unconditional, lyrics_target(lyrics))
        return Scored(scores, combine(scores))

    def pmi(self, prompt: str, unconditional: str, target: str) -> float:
        """The normalised PMI of `target`: its log-probability given the codes against without them."""
        return pmi_to_normalized(self.log_prob(prompt, target) - self.log_prob(unconditional, target), self.scale)

    def log_prob(self, prompt: str, target: str) -> float:
        """The mean log-probability of `target`'s tokens after `prompt` (upstream's ``_calculate_log_prob``)."""
        logits, target_ids = self._logits(prompt, target)
        if target_ids.numel() == 0:
            return float("-inf")
        log_probs = F.log_softmax(logits, dim=-1)
        rows = torch.arange(target_ids.shape[0], device=log_probs.device)
        return float(log_probs[rows, target_ids].mean().item())

    def recall(self, prompt: str, target: str, topk: int | None = None) -> float:
        """Upstream's rank-weighted top-k recall of `target`'s tokens (``_calculate_topk_recall``).

        A token ranked r ≤ k scores 1 - (r - 1) / k, one outside the top k 0; the mean over the target.
        """
        k = topk or self.topk
        logits, target_ids = self._logits(prompt, target)
        if target_ids.numel() == 0:
            return 0.0
        top = torch.topk(logits, k=min(k, logits.shape[-1]), dim=-1).indices.tolist()
        weights = [
            1.0 - (ranks.index(token) / k) if token in ranks else 0.0
            for token, ranks in zip(target_ids.tolist(), top, strict=True)
        ]
        return sum(weights) / len(weights)

    @torch.no_grad()
    def _logits(self, prompt: str, target: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: the logits that predict each target token, and those tokens.

        Prompt and prompt + target are tokenized apart, as upstream does, so that the tokens at the
        boundary are the ones the whole text gives.
        """
        tok = self.lm.tokenizer
        prompt_len = len(tok.encode(prompt, add_special_tokens=True).ids)
        ids = torch.tensor([tok.encode(prompt + target, add_special_tokens=True).ids], device=self.lm.device)
        if ids.shape[1] <= prompt_len:
            return torch.empty(0), torch.empty(0, dtype=torch.long)
        logits = self.lm.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        return logits[0, prompt_len - 1 : -1, :], ids[0, prompt_len:]


def take_plan(track: GeneratedTrack) -> Plan:
    """What the take was made for: its plan, or (no LM plan) its caption, lyrics and metadata as used."""
    if track.plan is not None:
        return track.plan
    meta = track.metadata
    return Plan(
        caption=track.caption,
        lyrics=track.lyrics,
        bpm=meta.bpm,
        key=meta.key,
        time_signature=meta.time_signature,
        duration_s=meta.duration_s,
        language=meta.language,
    )


def score_take(
    scorer: Scorer, request: TrackRequest, track: GeneratedTrack, codes_of: Callable[[np.ndarray, int], list[int]]
) -> TakeScore:
    """One take of a `best=N` request, scored against what it was made for.

    The codes are the take's plan's `audio_codes` (what the DiT followed); a take without them (a cover,
    whose DiT followed its source) is read back from its own audio by `codes_of` (VAE, then the DiT's
    tokenizer: what the LM reads of an upload), so that each take is judged on its own sound.
    """
    plan = take_plan(track)
    codes = list(plan.audio_codes) or codes_of(track.audio, request.seed)
    scored = scorer.score(codes, track.lyrics, plan_metadata(plan, track.caption))
    return TakeScore(total=scored.total, conditions=scored.conditions, best_of=request.spec.best_of)
