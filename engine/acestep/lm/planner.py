"""The planner: one sentence in, a full song blueprint (caption, lyrics, metadata, audio codes) out.

Phase A writes the metadata (and lyrics): create-sample mode from a description, or the
chain-of-thought mode when the user brought lyrics (with guidance, as upstream). Phase B
writes exactly ``5 * duration`` audio codes with guidance. Each phase decodes every request
of the batch in one loop; each request has its own constraint state and seeded generator.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from engine.acestep.lm.budget import (
    CODES_PER_SECOND,
    SCAFFOLD_TOKENS,
    ContextBudget,
    PlannerSettings,
    PlanRequest,
)
from engine.acestep.lm.constraints import (
    DURATION_MIN,
    FIELD_ORDER,
    Constraint,
    Spec,
    Vocab,
)
from engine.acestep.lm.decode import DecodeJob, decode
from engine.acestep.lm.model import LoadedLM, load_lm
from engine.acestep.lm.plan import format_cot, lm_fields, split_output
from engine.acestep.lm.prompts import INSTRUMENTAL_LYRICS
from engine.acestep.lm.reading import reading_plan
from engine.acestep.lm.tokenizer import encode
from storage.contract.errors import GenerationError, UserError
from storage.contract.spec import Plan

log = logging.getLogger(__name__)
COT_FIELDS = ("bpm", "caption", "duration", "keyscale", "language", "timesignature")
# What the code phase's CoT carries when the metadata were not written by a CoT phase: upstream's simple
# mode passes the sample's four metas as the user's (``use_cot_metas=False``), and with all four given
# upstream skips the CoT phase; either way the CoT is those four (llm_inference.py, has_all_metas).
METAS = ("bpm", "duration", "keyscale", "timesignature")
# A checkpoint folder may carry this file: planner budgets that suit the model (JSON, keys among
# BUDGET_KEYS). They replace only budgets left at their defaults. The tiny random test LM uses it,
# since a random model never ends its free text by itself.
BUDGETS_FILE = "songbot_planner.json"
BUDGET_KEYS = ("caption_max", "genres_max", "lyrics_max")


@dataclass
class Planner:
    """A loaded LM that plans songs. Build with :meth:`load`."""

    lm: LoadedLM
    vocab: Vocab
    settings: PlannerSettings = field(default_factory=PlannerSettings)
    vllm: Any = None
    fast: Any = None  # engine.acestep.lm.fast_engine.FastEngine when the fast path is on
    _switch: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @classmethod
    def load(cls, model_dir: Path, name: str, device: str = "cpu", settings: PlannerSettings | None = None) -> Planner:
        """Load ``model_dir/name`` (an ``acestep-5Hz-lm-*`` folder) on ``device``."""
        lm = load_lm(Path(model_dir) / name, device)
        settings = _folder_budgets(lm.folder, settings or PlannerSettings())
        vocab = Vocab.build(lm.tokenizer, lm.vocab_size, duration_max=settings.duration_max)
        planner = cls(lm=lm, vocab=vocab, settings=settings)
        if settings.decoder == "fast" or (settings.decoder == "auto" and device.startswith("cuda")):
            planner.use_fast_path()
        if settings.backend == "vllm" and settings.cfg_scale > 1.0:
            # vLLM has no guidance; the planner guides the code phase, so vLLM would serve nothing.
            log.warning(
                "LM_BACKEND=vllm serves only an unguided code phase and the planner guides it "
                "(cfg_scale %.1f): the built-in fast path decodes every phase.",
                settings.cfg_scale,
            )
        elif settings.backend == "vllm":
            from engine.acestep.lm.vllm_backend import VllmCodes

            planner.vllm = VllmCodes.load(lm.folder, device)
        return planner

    def use_fast_path(self, graphs: bool | None = None, len_step: int = 256) -> None:
        """Decode on the fast path (static cache, fixed-shape steps, CUDA graphs on CUDA).

        The reference loop (``settings.decoder == "reference"``) gives the same tokens.
        """
        from engine.acestep.lm.fast_engine import FastEngine
        from engine.acestep.lm.qwen3 import FastLM

        fast = FastLM.from_hf(self.lm.model, self.lm.config)
        self.fast = FastEngine(fast, self.vocab, self.settings.max_rows, graphs, len_step)

    def release(self) -> None:
        """Free the fast path's idle KV caches and CUDA graphs (rebuilt on the next plan).

        The caches stay allocated between plans for speed; call this to lend their memory to
        the DiT on a small GPU.
        """
        if self.fast is not None:
            self.fast.release()

    def _decode(self, jobs: list[DecodeJob], phase: str) -> None:
        fast = self.fast
        if fast is not None:
            try:
                fast.decode(jobs, phase)
                return
            except Exception as error:  # noqa: BLE001 - the reference loop computes the same tokens
                self._leave_fast_path(fast, error)
                for job in jobs:
                    _restart(job)
        decode(self.lm.model, jobs, self.vocab.pad, self.lm.device)

    def _leave_fast_path(self, fast: Any, error: Exception) -> None:
        """Plan with the reference loop from now on; log it once, whichever thread saw the failure first."""
        with self._switch:
            if self.fast is not fast:
                return
            self.fast = None
        log.warning("The planner's fast path failed, planning with the reference loop from now on: %r", error)

    # ---- context budget -------------------------------------------------------------------

    @property
    def budget(self) -> ContextBudget:
        """The context check, built on this planner's tokenizer and settings."""
        return ContextBudget(self.lm.tokenizer, self.settings)

    def _budget(self) -> int:
        return self.budget.tokens()

    def _meta_tokens(self) -> int:
        """An upper bound of the metadata phase's length: the free parts' caps plus the fixed YAML."""
        s = self.settings
        return min(self._budget(), s.caption_max + s.genres_max + s.lyrics_max + SCAFFOLD_TOKENS + 32)

    def max_duration(self, req: PlanRequest) -> int:
        """The longest song (seconds) whose prompts and codes fit the LM's context."""
        return self.budget.max_duration(req)

    def check_fits(self, req: PlanRequest) -> None:
        """Raise UserError (one sentence) when the request cannot fit the LM's context."""
        self.budget.check_fits(req)

    # ---- planning -------------------------------------------------------------------------

    def plan(self, requests: list[PlanRequest]) -> list[Plan]:
        """Plan every request; returns one `Plan` per request, in order.

        Raises:
            UserError: a request does not fit (see :meth:`check_fits`).
            GenerationError: the LM did not finish a plan within its token budget.
        """
        for req in requests:
            self.check_fits(req)
        metas = self._phase_a(requests)
        codes = self._phase_b(requests, metas) if self.settings.thinking else [[] for _ in metas]
        return [
            meta.model_copy(update={"audio_codes": tuple(code_list)})
            for meta, code_list in zip(metas, codes, strict=True)
        ]

    def new_codes(self, plans: list[Plan], seeds: list[int]) -> list[list[int]]:
        """Phase B alone: new audio codes for stored plans, each with its own seed (a re-roll as a new take).

        The caption, lyrics and metadata stay the plan's; only the performance (the codes) is drawn again.

        Raises:
            GenerationError: the LM did not finish the codes.
        """
        requests = [PlanRequest(description=p.caption or "", seed=seed) for p, seed in zip(plans, seeds, strict=True)]
        return self._phase_b(requests, plans)

    def _tok(self, text: str) -> list[int]:
        return encode(self.lm.tokenizer, text)

    def _phase_a_job(self, req: PlanRequest) -> DecodeJob:
        s, prompts = self.settings, self.lm.prompts
        given = req.given()
        common: dict[str, Any] = {
            "given": given,
            "caption_max": s.caption_max,
            "genres_max": s.genres_max,
            "text_max": s.lyrics_max,
            "duration_max": self.max_duration(req),
        }
        if req.lyrics and not req.instrumental:
            # Chain of thought for the user's caption and lyrics, guided, stopping before </think>.
            spec = Spec("meta", fields=COT_FIELDS, **common)
            prompt = self._tok(prompts.cot(req.description, req.lyrics))
            uncond = self._tok(prompts.cot(req.description, req.lyrics, negative=s.negative_prompt))
            return DecodeJob(
                prompt,
                Constraint(self.vocab, spec),
                _seed(req.seed),
                uncond,
                s.cfg_scale,
                s.temperature,
                s.top_p,
                max_new_tokens=self._meta_tokens(),
                phase=0,
            )
        # Create-sample: metadata with genres, then the lyrics (skipped for instrumentals).
        phase = "meta_only" if req.instrumental else "meta_text"
        spec = Spec(phase, fields=FIELD_ORDER, **common)
        prompt = self._tok(prompts.sample(req.description, req.instrumental))
        return DecodeJob(
            prompt,
            Constraint(self.vocab, spec),
            _seed(req.seed),
            None,
            1.0,
            s.temperature,
            s.top_p,
            max_new_tokens=self._meta_tokens(),
            phase=0,
        )

    def _phase_a(self, requests: list[PlanRequest]) -> list[Plan]:
        """The metadata of every request: decoded, or the user's own when the CoT phase is skipped."""
        decoded = [req for req in requests if not _skips_cot(req)]
        jobs = [self._phase_a_job(req) for req in decoded]
        if jobs:
            self._decode(jobs, "meta")
        written = iter(self._read_metas(decoded, jobs))
        return [_given_metas(req) if _skips_cot(req) else next(written) for req in requests]

    def _read_metas(self, requests: list[PlanRequest], jobs: list[DecodeJob]) -> list[Plan]:
        metas = []
        for req, job in zip(requests, jobs, strict=True):
            if not job.constraint.done:
                raise GenerationError("The song planner ran out of room while writing the song's details.")
            text = self.lm.tokenizer.decode(job.tokens, skip_special_tokens=False)
            meta, free_text = split_output(text)
            if req.instrumental:
                lyrics = INSTRUMENTAL_LYRICS
            elif req.lyrics:
                lyrics = req.lyrics
            else:
                lyrics = free_text or INSTRUMENTAL_LYRICS
            metas.append(
                Plan(
                    caption=str(meta.get("caption") or req.description),
                    lyrics=lyrics,
                    bpm=meta["bpm"],
                    key=meta["keyscale"],
                    time_signature=meta["timesignature"],
                    duration_s=meta["duration"],
                    language=meta["language"],
                )
            )
        return metas

    def _phase_b(self, requests: list[PlanRequest], plans: list[Plan]) -> list[list[int]]:
        s, prompts = self.settings, self.lm.prompts
        jobs = []
        for req, plan in zip(requests, plans, strict=True):
            caption, cot = _code_prompt(req, plan)
            lyrics = plan.lyrics or ""
            prompt = self._tok(prompts.codes(caption, lyrics, cot))
            uncond = self._tok(prompts.codes(caption, lyrics, cot, negative=s.negative_prompt))
            target = int((plan.duration_s or 0) * CODES_PER_SECOND)
            spec = Spec("codes", target_codes=target)
            jobs.append(
                DecodeJob(
                    prompt,
                    Constraint(self.vocab, spec),
                    _seed(req.seed),
                    uncond,
                    s.cfg_scale,
                    s.temperature,
                    s.top_p,
                    max_new_tokens=target + 1,
                    phase=1,
                )
            )
        if self.vllm is not None and s.cfg_scale <= 1.0:
            return self.vllm.codes(jobs, self.vocab)
        self._decode(jobs, "codes")
        out = []
        for job in jobs:
            codes = [t - self.vocab.code0 for t in job.tokens if self.vocab.is_code(t)]
            if not job.constraint.done or len(codes) != job.constraint.spec.target_codes:
                raise GenerationError("The song planner could not finish the song's audio codes.")
            out.append(codes)
        return out


def _restart(job: DecodeJob) -> None:
    """Undo a partly decoded job: no tokens, its constraint back at the start."""
    job.tokens.clear()
    job.constraint = Constraint(job.constraint.vocab, job.constraint.spec)


def _user_lyrics(req: PlanRequest) -> bool:
    """The CoT mode (the user's caption and lyrics), rather than create-sample from one sentence."""
    return bool(req.lyrics) and not req.instrumental


def _skips_cot(req: PlanRequest) -> bool:
    """Upstream skips the CoT phase when the user gave lyrics and all four metas (``has_all_metas``)."""
    given = req.given()
    return _user_lyrics(req) and all(key in given for key in METAS)


def _given_metas(req: PlanRequest) -> Plan:
    """A skipped CoT phase's metadata: the user's caption, lyrics and values."""
    given = req.given()
    values = {key: given[key] for key in METAS}  # the LM's names, read as the plan's by its aliases
    return Plan.model_validate(
        {"caption": req.description, "lyrics": req.lyrics, "language": given.get("language", "unknown"), **values}
    )


def _code_prompt(req: PlanRequest, plan: Plan) -> tuple[str, str]:
    """The code phase's user caption and CoT, as upstream's mode for this request writes them.

    With the user's lyrics, the user turn keeps the user's caption (upstream passes its own
    ``caption`` argument, not the CoT's rewrite) and the CoT carries what the CoT phase wrote.
    From one sentence (simple mode), the sample's caption is the caption, and the CoT carries
    the four metas only.
    """
    if _user_lyrics(req):
        fields = METAS if _skips_cot(req) else COT_FIELDS
        return req.description, format_cot(lm_fields(plan, fields))
    return plan.caption or "", format_cot(lm_fields(plan, METAS))


def _folder_budgets(folder: Path, settings: PlannerSettings) -> PlannerSettings:
    """Apply the folder's ``BUDGETS_FILE`` to the budgets left at their defaults."""
    path = folder / BUDGETS_FILE
    if not path.is_file():
        return settings
    defaults = PlannerSettings()
    given = json.loads(path.read_text())
    chosen: dict[str, Any] = {
        k: int(given[k]) for k in BUDGET_KEYS if k in given and getattr(settings, k) == getattr(defaults, k)
    }
    return replace(settings, **chosen)


UNDERSTAND_TEMPERATURE = 0.3


def understand(planner: Planner, codes: list[list[int]], seeds: list[int]) -> list[Plan]:
    """Describe audio from its 5 Hz codes (to caption covers and uploads): metadata and lyrics.

    Upstream's understand mode: no guidance, temperature 0.3, all seven fields (genres
    included), then free lyrics with audio codes blocked. The LM's duration is a guess, so the
    audio's own length (codes / 5) is injected instead. Each reading is sampled with its own
    request's seed, so it does not depend on the readings it is decoded with.

    Raises:
        UserError: when the codes (the audio) are too long for the LM's context.
    """
    s = planner.settings
    jobs = []
    for code_list, seed in zip(codes, seeds, strict=True):
        prompt = planner._tok(planner.lm.prompts.understand(code_list))
        if len(prompt) + SCAFFOLD_TOKENS + s.caption_max + s.genres_max + s.lyrics_max > planner._budget():
            raise UserError("This audio is too long for the song planner to describe; please use a shorter clip.")
        seconds = min(max(round(len(code_list) / CODES_PER_SECOND), DURATION_MIN), s.duration_max)
        spec = Spec(
            "meta_text",
            fields=FIELD_ORDER,
            given={"duration": seconds},
            caption_max=s.caption_max,
            genres_max=s.genres_max,
            text_max=s.lyrics_max,
        )
        jobs.append(
            DecodeJob(
                prompt,
                Constraint(planner.vocab, spec),
                _seed(seed),
                None,
                1.0,
                UNDERSTAND_TEMPERATURE,
                s.top_p,
                max_new_tokens=planner._meta_tokens(),
                phase=0,
            )
        )
    planner._decode(jobs, "meta")
    out = []
    for job, code_list in zip(jobs, codes, strict=True):
        meta, lyrics = split_output(planner.lm.tokenizer.decode(job.tokens, skip_special_tokens=False))
        # Whatever the LM wrote, a reading: a value not of its field's type is dropped, not raised.
        out.append(reading_plan(meta, lyrics, len(code_list) / CODES_PER_SECOND))
    return out


def _seed(seed: int) -> int:
    """The request's uint32 seed (the noise of each phase is keyed by it and the phase)."""
    return int(seed) & 0xFFFFFFFF
