"""Work on a finished song: the specs of takes, re-rolls as new takes, repaints and extends.

Pure functions over stored values; `service.py` looks the song up, checks who asks, and submits.
A repaint or an extend keeps the song's caption, lyrics and metadata (a new caption may replace the
caption) and names the song it changes, so its re-roll repeats the same change with a new seed.
"""

from __future__ import annotations

import secrets
from dataclasses import replace

from bot.core.render import format_duration
from storage.contract.errors import LimitError, UserError
from storage.contract.spec import Edit, JobSpec, check_seed, check_takes
from storage.contract.text import counted
from storage.contract.types import DeliveryTarget, JobView, TrackView
from storage.contract.values import BEST_OF_MAX, SEED_MAX

# A span that starts this close to 0 and ends this close to the end is the whole song.
WHOLE_SONG_MARGIN_S = 0.5
# The ➕ button adds this much (less when the song is near the longest a song may be).
EXTEND_BUTTON_S = 30
EXTEND_MIN_S = 1


def take_seeds(seed: int | None, takes: int, consecutive: bool = False) -> list[int]:
    """One seed per take: the given seed and the ones after it, or fresh ones.

    With `consecutive` (the takes of `best=N`), fresh seeds are one drawn seed and the ones after it,
    so that the takes read as s, s+1, ... in /history whether or not a seed was given.

    Raises:
        UserError: more takes than a command may make, or a seed outside uint32 (whatever adapter
            the request came through).
    """
    check_takes(takes)
    if seed is not None:
        check_seed(seed)
    if seed is None and consecutive:
        seed = secrets.randbelow(SEED_MAX + 1)
    if seed is None:
        return [secrets.randbelow(SEED_MAX + 1) for _ in range(takes)]
    return [(seed + n) % (SEED_MAX + 1) for n in range(takes)]


def take_targets(target: DeliveryTarget, takes: int) -> list[DeliveryTarget]:
    """The first take goes where the command was answered; the others get status messages of their own."""
    others = replace(target, status_message_id=None, interaction_token=None, token_expires_at=None)
    return [target] + [others] * (takes - 1)


def check_best(best: int, takes: int) -> None:
    """`best=N` is 2 to BEST_OF_MAX takes and does not go with `takes=` (whatever adapter it came through).

    Raises:
        UserError: the sentence to show.
    """
    if best > 1 and takes > 1:
        raise UserError("Use takes= for several songs or best= for the best of several takes, not both.")
    if not 1 <= best <= BEST_OF_MAX:
        raise UserError(f"best must be a whole number from 2 to {BEST_OF_MAX}: that many takes, and I post the best.")


def best_targets(target: DeliveryTarget, best: int) -> list[DeliveryTarget | None]:
    """The takes of `best=N`: the first has the request's status message and posts the winner; the others none."""
    return [target] + [None] * (best - 1)


def reroll_spec(parent: JobView, track: TrackView, seed: int | None) -> JobSpec:
    """The spec of a re-roll: with a seed, the stored plan exactly; without, new codes for the same blueprint."""
    plan = track.plan
    new_take = seed is None and plan is not None and bool(plan.audio_codes)
    if new_take and plan is not None:
        plan = plan.model_copy(update={"audio_codes": ()})
    # The style as the song was made: the engine refuses the re-roll when the style's files changed since.
    style_sha256 = track.style.sha256 if track.style is not None else None
    # A re-roll of a best=N take is one song of its own, posted like any (its seed, its codes: the same audio).
    update = {"plan": plan, "new_take": new_take, "style_sha256": style_sha256, "best_of": 1}
    return parent.spec.model_copy(update=update)


def repaint_edit(track: TrackView, start_s: float, end_s: float) -> Edit:
    """The repaint of `start_s`..`end_s` of a song, checked against its length.

    Raises:
        UserError: the part is outside the song, or is the whole song.
    """
    length = track.duration_s
    if start_s >= length or end_s > length + 0.05:
        raise UserError(
            f"Song #{track.job_id} is {format_duration(length)} long, so the part to repaint must lie "
            f"within 0:00-{format_duration(length)}."
        )
    if start_s <= WHOLE_SONG_MARGIN_S and end_s >= length - WHOLE_SONG_MARGIN_S:
        raise UserError(
            f"That part is the whole of song #{track.job_id}; use /reroll {track.job_id} for a new take instead."
        )
    return Edit(task="repaint", song_id=track.job_id, start_s=start_s, end_s=min(end_s, length))


def extend_edit(track: TrackView, seconds: float, max_duration_s: int) -> Edit:
    """The extension of a song by `seconds`, within the longest a song may be.

    Raises:
        LimitError: the song would grow past `max_duration_s`.
    """
    room = max_duration_s - track.duration_s
    if seconds > room:
        most = f"at most {counted(int(room), 'second')}" if room >= EXTEND_MIN_S else "no longer"
        raise LimitError(
            f"Song #{track.job_id} is {format_duration(track.duration_s)} long and songs end at "
            f"{format_duration(max_duration_s)}, so it can grow {most}."
        )
    return Edit(task="extend", song_id=track.job_id, start_s=track.duration_s, end_s=track.duration_s + seconds)


def edit_spec(
    parent: JobView,
    track: TrackView,
    edit: Edit,
    caption: str,
    like: bool = False,
    style: tuple[str | None, float | None] | None = None,
) -> JobSpec:
    """The spec of an edit: the song's own caption (or the new one), lyrics and metadata (and its clip).

    The metadata are the ones the song was made with; what the spec's sets do not hold (a key the LM
    spelled `C♯ major`, the language `unknown`) is left to the model (`JobSpec.meta_fields`). The style
    is the one asked for (name, scale), else the song's own.
    """
    name, scale = style if style is not None and style[0] is not None else (parent.spec.style, parent.spec.style_scale)
    return JobSpec.build(
        style=name,
        style_scale=scale,
        caption=caption.strip() or track.caption,
        lyrics=track.lyrics,
        instrumental=parent.spec.instrumental,
        duration_s=round(edit.end_s if edit.task == "extend" else track.duration_s, 3),
        **JobSpec.meta_fields(track.meta),
        edit=edit,
        like=like,
    )


def extend_button_seconds(track: TrackView, max_duration_s: int) -> int:
    """What the ➕ button adds: EXTEND_BUTTON_S, or what is left up to the longest song."""
    return max(EXTEND_MIN_S, min(EXTEND_BUTTON_S, int(max_duration_s - track.duration_s)))
