"""Checks the bot runs before queueing that need engine knowledge (wired here, the composition root).

`bot/` may not import `engine/`, so the LM's context check is built here and handed to the
service as a plain function.
"""

from __future__ import annotations

import logging

from bot.core.parser import SongRequest
from bot.core.service import SongCheck
from storage.settings import Settings

log = logging.getLogger("songbot")


def song_checks(settings: Settings) -> list[SongCheck]:
    """The LM context check when MODEL_DIR holds a planner LM (and its tokenizer loads), else none."""
    if settings.engine_backend == "sketch":
        return []
    try:
        from engine.acestep.lm.budget import ContextBudget, PlanRequest
        from engine.acestep.lm.layout import find_lm
    except ImportError:
        return []
    # The engine loads LM_MODEL when it is there, else the first LM present: check against that one.
    folder = find_lm(settings.model_dir, settings.lm_model) or find_lm(settings.model_dir)
    if folder is None:
        return []
    if folder.name != settings.lm_model:
        log.warning(
            "LM_MODEL is not in MODEL_DIR; the planner LM present is used",
            extra={"lm_model": settings.lm_model, "lm": folder.name},
        )
    try:
        budget = ContextBudget.load(settings.model_dir, folder.name)
    except (FileNotFoundError, OSError, ValueError):
        return []

    def fits_the_planner(request: SongRequest, _default_duration_s: int) -> None:
        budget.check_fits(
            PlanRequest(
                description=request.description,
                seed=0,
                instrumental=request.instrumental,
                language=request.language,
                duration=float(request.duration_s) if request.duration_s else None,
                bpm=request.bpm,
                keyscale=request.key,
                timesignature=request.time_signature,
                lyrics=request.lyrics.strip() or None,
            )
        )

    log.info("song requests are checked against the planner LM's context", extra={"lm": folder.name})
    return [fits_the_planner]
