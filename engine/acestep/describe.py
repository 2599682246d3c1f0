"""`/describe` on ACE-Step: a recording's 5 Hz codes read by the planner LM in understand mode.

    source audio ──VAE encode──► latents ──FSQ tokenizer──► 5 Hz codes ──LM (understand)──► reading

The same path a cover's reading takes (`pipeline.source_codes`, `lm.planner.understand`), and no more:
no DiT, no VAE decode. What the LM reads must fit its context with room for what it writes, so a long
recording is read from its start up to `readable_s` (and the description says how much it heard).
The duration is always the recording's own length: the LM's is a guess (see
`tests/data/understand_log_README.md`). Without a planner LM the description is a guess from simple
analysis (`engine/analysis.py`), and says so.
"""

from __future__ import annotations

from typing import Any

from engine.analysis import describe_audio
from engine.protocol import Progress, TrackRequest
from storage.contract.errors import GenerationError, UserError
from storage.contract.spec import Description

NO_SOURCE = "There is no recording to describe; please send it again."
LISTENING = "listening"


def describe(pipeline: Any, planner: Any, request: TrackRequest, progress: Progress) -> Description:
    """Describe a request's source audio (see the module docstring).

    Args:
        pipeline: The loaded `AceStepPipeline` (its VAE encoder and the DiT's tokenizer).
        planner: The loaded `Planner`, or None when no LM is installed.
        request: A ``describe`` request with its decoded source audio.
        progress: The worker's progress callback.

    Raises:
        GenerationError: no source, or the LM could not read it, with the sentence to show.
    """
    from engine.acestep.lm.planner import understand
    from engine.acestep.lm.reading import described

    source = request.source_audio
    if source is None:
        raise GenerationError(NO_SOURCE)
    rate = pipeline.vae.sample_rate
    if planner is None:
        return describe_audio(source, rate, "analysis")
    progress(request.job_id, LISTENING, 0.0)
    heard = source[: int(readable_s(planner) * rate)]
    codes = pipeline.source_codes(heard, request.seed)
    progress(request.job_id, LISTENING, 50.0)
    try:
        reading = understand(planner, [codes], [request.seed])[0]
    except UserError as error:
        raise GenerationError(error.user_message) from error
    plan = described(reading.model_copy(update={"duration_s": round(source.shape[0] / rate, 2)}))
    cut_s = round(heard.shape[0] / rate, 2) if heard.shape[0] < source.shape[0] else None
    progress(request.job_id, LISTENING, 100.0)
    return Description(plan=plan, backend="acestep", cut_s=cut_s)


def readable_s(planner: Any) -> float:
    """The longest recording (seconds) whose codes fit the LM's context beside what it writes about them.

    Each audio code is one token of the prompt; the rest of the context holds the prompt's own text and
    the reading's caps (`planner.understand` refuses a prompt over that budget).
    """
    from engine.acestep.lm.budget import CODES_PER_SECOND, SCAFFOLD_TOKENS

    s = planner.settings
    empty = len(planner._tok(planner.lm.prompts.understand([])))
    per_code = (len(planner._tok(planner.lm.prompts.understand([0] * 10))) - empty) / 10
    room = planner._budget() - empty - SCAFFOLD_TOKENS - s.caption_max - s.genres_max - s.lyrics_max
    codes = int(room / max(per_code, 1.0))
    if codes < CODES_PER_SECOND:
        raise GenerationError("The song planner has no room to read a recording; please ask the operators.")
    return float(codes // CODES_PER_SECOND)
