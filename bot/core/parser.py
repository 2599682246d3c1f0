"""The text command syntax shared by the console and Telegram.

    /song <description> [duration=30] [bpm=90] [key="F# minor"] [seed=7] [language=en] [instrumental=true]
    <lyrics on the following lines>
    /cover [style] [strength=0.6] [language=es] [instrumental=true]   (a reply to audio; the console: a path first)
    <new lyrics for the cover on the following lines>
    /song … takes=2   /cover … takes=2   (1 to 4 results, each with its own seed)
    /song … best=3    /cover … best=3    (2 to 4 takes, scored; only the best is posted)
    /song … like=<path>                  (console: the clip whose sound the song takes)
    /reroll <song id> [seed]
    /repaint <song id> <start>-<end> [caption]   (seconds or m:ss; the id may come from a replied-to result)
    /extend <song id> <seconds> [caption]
    /history   /queue   /cancel [id]   /lyrics <id>   /help
    /styles                              (the house styles; style=<name> [style_scale=0.7] on /song, /cover,
                                          /repaint and /extend applies one)
    /admin pause|resume|stats|ban <platform:id>|unban <platform:id>|quota <platform:id> <n|default>

Parsing checks syntax and types; limits that depend on settings are checked in `service.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, cast

from storage.contract.errors import UserError
from storage.contract.types import UserRef
from storage.contract.values import BEST_OF_MAX, ID_MAX, LANGUAGES, SEED_MAX, TAKES_MAX, canonical_key

STYLE_OPTIONS = ("style", "style_scale")
SONG_OPTIONS = (
    "duration",
    "bpm",
    "key",
    "seed",
    "language",
    "instrumental",
    "timesig",
    "takes",
    "best",
    *STYLE_OPTIONS,
)
CONSOLE_SONG_OPTIONS = (*SONG_OPTIONS, "like")
COVER_OPTIONS = ("strength", "seed", "duration", "takes", "language", "instrumental", "best", *STYLE_OPTIONS)
# A time in a span: seconds (`75`, `7.5`) or minutes and seconds (`1:15`, `1:15.5`), ASCII digits only.
TIME = re.compile(r"^(?:([0-9]{1,3}):([0-5][0-9])|([0-9]{1,4}))(?:\.([0-9]{1,3}))?$", re.ASCII)
SONG_ID = re.compile(r"^#?([0-9]{1,18})$", re.ASCII)
REPAINT_USAGE = "Use /repaint <song id> <start>-<end> [caption], for example: /repaint 12 0:30-0:45 a guitar solo"
EXTEND_USAGE = "Use /extend <song id> <seconds> [caption], for example: /extend 12 30 a slow fade-out"
OPTION = re.compile(r"""(?<!\S)([A-Za-z_]+)=("[^"]*"|'[^']*'|\S+)""")
# `name=` with nothing after it: an option whose value was left out, never part of the description.
EMPTY_OPTION = re.compile(r"(?<!\S)([A-Za-z_]+)=(?=\s|$)")
# Numbers from users: ASCII digits only (`²`, full-width `１２` and other Unicode digits are refused),
# at most 18 of them so that every accepted number fits a 64-bit column before its range is checked.
DIGITS = re.compile(r"[0-9]{1,18}")
DECIMAL = re.compile(r"-?(?:[0-9]{1,18}(?:\.[0-9]{0,18})?|\.[0-9]{1,18})")
# The time signatures the model knows, as users write them, and their beats per bar.
TIME_SIGNATURE_FORMS = {"2": 2, "3": 3, "4": 4, "6": 6, "2/4": 2, "3/4": 3, "4/4": 4, "6/8": 6}
COMMAND = re.compile(r"^/([A-Za-z_]+)(?:@([A-Za-z0-9_]+))?(?:\s+|$)")
# Discord's option range for a daily quota; the text commands take the same.
QUOTA_MAX = 100_000
PLATFORM_ID = re.compile(r"^(discord|telegram|console):([0-9A-Za-z_-]{1,64})$")
ADMIN_USAGE = (
    "Use /admin pause, resume, stats, ban <platform:id>, unban <platform:id> or "
    "quota <platform:id> <songs a day|default>."
)


@dataclass(frozen=True)
class ParsedCommand:
    """A slash command split into name, first-line arguments and the following lines."""

    name: str
    args: str
    body: str


@dataclass(frozen=True)
class SongRequest:
    """What a user asked for with /song."""

    description: str
    lyrics: str = ""
    instrumental: bool = False
    duration_s: int | None = None
    bpm: int | None = None
    key: str | None = None
    language: str | None = None
    seed: int | None = None
    time_signature: int | None = None
    takes: int = 1
    like_path: str | None = None
    lora: str | None = None  # style=<name>: a house style (a LoRA under MODEL_DIR/loras/)
    lora_scale: float | None = None  # style_scale=, 0..1; None: the style's own (1)
    best: int = 1


@dataclass(frozen=True)
class CoverRequest:
    """What a user asked for with /cover.

    `lyrics` are new words for the cover (sung instead of the source's), `language` the language
    they are sung in; both go to the model as upstream's cover passes them (`lyrics`, `vocal_language`).
    """

    style: str = ""
    strength: float | None = None
    seed: int | None = None
    path: str | None = None
    takes: int = 1
    lyrics: str = ""
    language: str | None = None
    instrumental: bool = False
    lora: str | None = None  # style=<name> (the text before is the cover's description, `style` above)
    lora_scale: float | None = None
    best: int = 1


@dataclass(frozen=True)
class RepaintRequest:
    """/repaint: regenerate the seconds from `start_s` to `end_s` of a song."""

    song_id: int
    start_s: float
    end_s: float
    caption: str = ""
    lora: str | None = None
    lora_scale: float | None = None


@dataclass(frozen=True)
class ExtendRequest:
    """/extend: continue a song by `seconds`."""

    song_id: int
    seconds: int
    caption: str = ""
    lora: str | None = None
    lora_scale: float | None = None


AdminAction = Literal["pause", "resume", "stats", "ban", "unban", "quota"]


@dataclass(frozen=True)
class AdminCommand:
    """An operator command: what to do, to whom, and the new daily quota (None: back to the default)."""

    action: AdminAction
    who: UserRef | None = None
    quota: int | None = None


def parse_command(text: str, bot_username: str | None = None) -> ParsedCommand | None:
    """Split `/name@bot args` plus the following lines; None for plain text or a command meant for another bot."""
    text = text.strip()
    match = COMMAND.match(text)
    if not match:
        return None
    addressee = match.group(2)
    if addressee and (bot_username is None or addressee.lower() != bot_username.lower()):
        return None
    rest = text[match.end() :]
    first, _, body = rest.partition("\n")
    return ParsedCommand(name=match.group(1).lower(), args=first.strip(), body=body.strip("\n"))


def parse_song(command: ParsedCommand, with_path: bool = False) -> SongRequest:
    """`/song` arguments → a SongRequest (`like=<path>` only on the console).

    Raises:
        UserError: an unknown option or a value of the wrong type.
    """
    options, description = split_options(command.args, CONSOLE_SONG_OPTIONS if with_path else SONG_OPTIONS)
    if not description:
        raise UserError("Tell me what the song should be about, for example: /song lo-fi rain at night")
    return SongRequest(
        description=description,
        lyrics=command.body.strip(),
        instrumental=parse_bool(options.get("instrumental", "false"), "instrumental"),
        duration_s=parse_int(options["duration"], "duration") if "duration" in options else None,
        bpm=parse_int(options["bpm"], "bpm") if "bpm" in options else None,
        key=normalize_key(options["key"]) if "key" in options else None,
        language=normalize_language(options["language"]) if "language" in options else None,
        seed=parse_seed(options["seed"]) if "seed" in options else None,
        time_signature=parse_time_signature(options["timesig"]) if "timesig" in options else None,
        takes=parse_takes(options["takes"]) if "takes" in options else 1,
        like_path=options.get("like"),
        lora=style_option(options)[0],
        lora_scale=style_option(options)[1],
        best=parse_best_option(options),
    )


def parse_cover(command: ParsedCommand, with_path: bool = False) -> CoverRequest:
    """`/cover [path] [style] [strength=..] [language=..]` + lyrics lines → a CoverRequest (a path: console only).

    Raises:
        UserError: an unknown option, a value of the wrong type, or new lyrics for an instrumental cover.
    """
    options, rest = split_options(command.args, COVER_OPTIONS)
    if "duration" in options:  # known, so that the sentence says why rather than "unknown option"
        raise UserError("A cover is as long as its recording, so it takes no duration=; trim the recording instead.")
    path = None
    if with_path:
        if not rest:
            raise UserError("Give the audio file to cover, for example: /cover ~/song.mp3 jazz trio")
        path, _, rest = _first_word(rest)
    strength = parse_float(options["strength"], "strength") if "strength" in options else None
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise UserError("strength must be between 0 and 1, for example strength=0.6.")
    seed = parse_seed(options["seed"]) if "seed" in options else None
    takes = parse_takes(options["takes"]) if "takes" in options else 1
    lyrics, language, instrumental = cover_words(command.body, options)
    lora, lora_scale = style_option(options)
    return CoverRequest(
        style=rest.strip(),
        strength=strength,
        seed=seed,
        path=path,
        takes=takes,
        lyrics=lyrics,
        language=language,
        instrumental=instrumental,
        lora=lora,
        lora_scale=lora_scale,
        best=parse_best_option(options),
    )


def cover_words(body: str, options: dict[str, str]) -> tuple[str, str | None, bool]:
    """A cover's new lyrics (the lines after the command, as /song takes them), language and instrumental.

    Raises:
        UserError: a language the model does not know, or lyrics for a cover asked to be instrumental.
    """
    lyrics = body.strip()
    language = normalize_language(options["language"]) if "language" in options else None
    instrumental = parse_bool(options.get("instrumental", "false"), "instrumental")
    check_cover_words(lyrics, instrumental)
    return lyrics, language, instrumental


def check_cover_words(lyrics: str, instrumental: bool) -> None:
    """New lyrics ask for a voice: refuse them beside instrumental=true rather than drop either.

    Raises:
        UserError: both were given.
    """
    if instrumental and lyrics.strip():
        raise UserError("A cover with new lyrics can't be instrumental; leave out instrumental=true or the lyrics.")


def parse_describe_path(command: ParsedCommand) -> str:
    """`/describe <path>` on the console → the file's path (in quotes when it has spaces).

    Raises:
        UserError: no path was given.
    """
    path = _first_word(command.args)[0] if command.args.strip() else ""
    if not path:
        raise UserError("Give the audio file to describe, for example: /describe ~/Music/take.mp3")
    return path


def style_option(options: dict[str, str]) -> tuple[str | None, float | None]:
    """`style=<name>` and `style_scale=<0..1>` → (name, scale); the name is checked at submit."""
    scale = parse_style_scale(options["style_scale"]) if "style_scale" in options else None
    name = options.get("style")
    if scale is not None and name is None:
        raise UserError("style_scale= goes with a style, for example style=demo style_scale=0.5 (see /styles).")
    return name, scale


def parse_style_scale(value: str) -> float:
    """How strongly a style is applied: 0 (not at all) to 1 (the style as trained)."""
    scale = parse_float(value, "style_scale")
    if not 0.0 <= scale <= 1.0:
        raise UserError("style_scale must be between 0 and 1, for example style_scale=0.7.")
    return scale


def parse_reroll(command: ParsedCommand) -> tuple[int, int | None]:
    """`/reroll <id> [seed]` → (song id, seed or None)."""
    parts = command.args.replace("#", " ").split()
    if not parts or len(parts) > 2:
        raise UserError("Use /reroll <song id> [seed], for example: /reroll 12 or /reroll 12 4242")
    song_id = parse_song_id(parts[0])
    seed = parse_seed(parts[1].removeprefix("seed=")) if len(parts) == 2 else None
    return song_id, seed


def parse_repaint(command: ParsedCommand, replied_song: int | None = None) -> RepaintRequest:
    """`/repaint [id] <start>-<end> [caption]` → a RepaintRequest; the id may come from a replied-to result.

    Raises:
        UserError: no song, no span, a time that is not seconds or m:ss, or an end before the start.
    """
    song_id, rest = _song_and_rest(command.args, replied_song, REPAINT_USAGE)
    span, *caption = rest.split(maxsplit=1)
    start_s, end_s = parse_span(span)
    options, text = split_options(" ".join(caption), STYLE_OPTIONS)
    return RepaintRequest(song_id, start_s, end_s, text, *style_option(options))


def parse_extend(command: ParsedCommand, replied_song: int | None = None) -> ExtendRequest:
    """`/extend [id] <seconds> [caption]` → an ExtendRequest; the id may come from a replied-to result."""
    song_id, rest = _song_and_rest(command.args, replied_song, EXTEND_USAGE)
    amount, *caption = rest.split(maxsplit=1)
    options, text = split_options(" ".join(caption), STYLE_OPTIONS)
    return ExtendRequest(song_id, parse_seconds(amount), text, *style_option(options))


def _song_and_rest(args: str, replied_song: int | None, usage: str) -> tuple[int, str]:
    """The song id and the arguments after it.

    The id is the first word when a span or an amount follows it (`12 0:30-0:45`, `12 30`); otherwise
    the arguments are all span or amount and the song is the replied-to result.
    """
    words = args.split()
    written = SONG_ID.match(words[0]) if words else None
    if written and len(words) >= 2 and _span_or_amount(words[1]):
        return int(written[1]), args.split(maxsplit=1)[1]
    if replied_song is None or not words:
        raise UserError(usage)
    return replied_song, args.strip()


def _span_or_amount(word: str) -> bool:
    start, dash, end = word.partition("-")
    if dash:
        return bool(TIME.match(start) and TIME.match(end))
    # Any digits count as an amount here (`３０` too), so that parse_seconds says what is wrong with them.
    return bool(TIME.match(word.removesuffix("s"))) or word.removesuffix("s").isdigit()


def parse_span(text: str) -> tuple[float, float]:
    """`0:30-0:45` or `8-12` → (start, end) in seconds.

    Raises:
        UserError: not two times joined by a dash, or the end does not come after the start.
    """
    start, dash, end = text.partition("-")
    if not dash:
        raise UserError(f"Give the part as <start>-<end>, for example 0:30-0:45, not {text[:20]!r}.")
    start_s, end_s = parse_time(start), parse_time(end)
    if end_s <= start_s:
        raise UserError("The end of the part must come after its start, for example 0:30-0:45.")
    return start_s, end_s


def parse_time(text: str) -> float:
    """`75`, `7.5`, `1:15` or `1:15.5` → seconds (ASCII digits only)."""
    match = TIME.match(text.strip())
    if not match:
        raise UserError(f"Write times as seconds or minutes:seconds, for example 45 or 0:45, not {text[:20]!r}.")
    minutes, seconds, plain, fraction = match.groups()
    whole = int(minutes) * 60 + int(seconds) if minutes is not None else int(plain)
    return whole + (float(f"0.{fraction}") if fraction else 0.0)


def parse_seconds(text: str) -> int:
    """How many seconds to add: a whole number from 1 up, ASCII digits only.

    The upper bound depends on the song (how far it is from the longest a song may be), so the
    service checks it and names the room left (`edits.extend_edit`).
    """
    value = text.strip().removesuffix("s")
    if not DIGITS.fullmatch(value):
        raise UserError(
            f"Say how many seconds to add as a whole number{_ascii_hint(text)}, for example 30, not {text[:20]!r}."
        )
    if int(value) < 1:
        raise UserError("A song can grow by at least 1 second; say how many seconds to add, for example 30.")
    return int(value)


def parse_takes(value: str) -> int:
    """`takes=N`: a whole number from 1 to TAKES_MAX, ASCII digits only."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= TAKES_MAX:
        raise UserError(f"takes must be a whole number from 1 to {TAKES_MAX}.")
    return int(text)


def parse_best(value: str) -> int:
    """`best=N`: how many takes to make and score, of which the best is posted: 2 to BEST_OF_MAX."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or not 2 <= int(text) <= BEST_OF_MAX:
        raise UserError(f"best must be a whole number from 2 to {BEST_OF_MAX}: that many takes, and I post the best.")
    return int(text)


def parse_best_option(options: dict[str, str]) -> int:
    """`best=N` from a command's options (1 without it); it cannot go with `takes=`."""
    if "best" not in options:
        return 1
    if "takes" in options:
        raise UserError("Use takes= for several songs or best= for the best of several takes, not both.")
    return parse_best(options["best"])


def parse_id_arg(command: ParsedCommand, usage: str) -> int | None:
    """An optional song id argument (`/cancel [id]`, `/lyrics <id>`)."""
    text = command.args.replace("#", "").strip()
    if not text:
        return None
    if not DIGITS.fullmatch(text):
        raise UserError(usage)
    return parse_song_id(text)


def parse_song_id(value: str) -> int:
    """A song id: ASCII digits, from 1 to ID_MAX (the largest id the jobs table can hold)."""
    return parse_int(value, "song id", low=1, high=ID_MAX)


def parse_admin(args: str) -> AdminCommand:
    """`pause`, `resume`, `stats`, `ban <p:id>`, `unban <p:id>`, `quota <p:id> <n|default>` → an AdminCommand.

    Raises:
        UserError: an unknown action, a missing or extra argument, or a quota that is not a count.
    """
    first, *rest = args.split() or [""]
    action = first.lower()
    if action in ("pause", "resume", "stats") and not rest:
        return AdminCommand(cast(AdminAction, action))
    if action in ("ban", "unban") and len(rest) == 1:
        return AdminCommand(cast(AdminAction, action), who=parse_user_key(rest[0]))
    if action == "quota" and len(rest) == 2:
        return AdminCommand("quota", who=parse_user_key(rest[0]), quota=parse_quota(rest[1]))
    raise UserError(ADMIN_USAGE)


def parse_user_key(value: str) -> UserRef:
    """`telegram:12345` → the user it names."""
    match = PLATFORM_ID.match(value.strip())
    if not match:
        raise UserError("Name the user as platform:id, for example telegram:12345.")
    return UserRef(match[1], match[2])


def parse_quota(value: str) -> int | None:
    """A daily quota: a count of songs from 0 (no limit) to QUOTA_MAX, or `default` (None)."""
    text = value.strip().lower()
    if text == "default":
        return None
    if not DIGITS.fullmatch(text) or int(text) > QUOTA_MAX:
        raise UserError(
            f"The quota must be a number of songs a day from 0 (no limit) to {QUOTA_MAX}, "
            f"or 'default', not {value[:20]!r}."
        )
    return int(text)


def split_options(text: str, allowed: tuple[str, ...]) -> tuple[dict[str, str], str]:
    """Pull `name=value` options out of a line; the rest is free text."""
    options: dict[str, str] = {}
    for name, value in OPTION.findall(text):
        key = name.lower()
        if key not in allowed:
            known = ", ".join(f"{option}=" for option in allowed)
            raise UserError(f"I don't know the option {name}=; the options are {known}.")
        options[key] = value.strip("\"'")
    rest = OPTION.sub(" ", text)
    for name in EMPTY_OPTION.findall(rest):
        if name.lower() not in allowed:
            known = ", ".join(f"{option}=" for option in allowed)
            raise UserError(f"I don't know the option {name}=; the options are {known}.")
        raise UserError(f"Give {name}= a value, with no space after the = sign.")
    return options, " ".join(rest.split())


def parse_int(value: str, name: str, low: int | None = None, high: int | None = None) -> int:
    """A whole number written in ASCII digits (a leading minus allowed), in `low`..`high` when given.

    Raises:
        UserError: anything else (Unicode or full-width digits, signs, separators, decimals, huge numbers).
    """
    text = value.strip().removesuffix("s")
    digits = text.removeprefix("-")
    if not DIGITS.fullmatch(digits):
        raise UserError(f"{name} must be a whole number{_ascii_hint(value)}, not {value[:20]!r}.")
    number = -int(digits) if text.startswith("-") else int(digits)
    if (low is not None and number < low) or (high is not None and number > high):
        raise UserError(f"{name} must be between {low} and {high}.")
    return number


def parse_float(value: str, name: str) -> float:
    """A number written in ASCII digits with an optional decimal point, or one sentence saying what is wanted."""
    if not DECIMAL.fullmatch(value.strip()):
        raise UserError(f"{name} must be a number{_ascii_hint(value)}, not {value[:20]!r}.")
    return float(value)


def _ascii_hint(value: str) -> str:
    """Say why `１２` or `²` is refused: it looks like a number but is not written in the digits 0-9."""
    return " written with the digits 0-9" if any(char.isdigit() and not char.isascii() for char in value) else ""


def parse_bool(value: str, name: str) -> bool:
    """`true/false/yes/no/1/0/on/off`."""
    lowered = value.strip().lower()
    if lowered in ("true", "yes", "1", "on", "y"):
        return True
    if lowered in ("false", "no", "0", "off", "n"):
        return False
    raise UserError(f"{name} must be true or false.")


def parse_seed(value: str) -> int:
    """A seed: a whole number from 0 to 4294967295."""
    return parse_int(value, "seed", low=0, high=SEED_MAX)


def parse_time_signature(value: str) -> int:
    """`4`, `4/4`, `3/4`, `6/8` → beats per bar (2, 3, 4 or 6); `4/0`, `3/8` and the like are refused."""
    beats = TIME_SIGNATURE_FORMS.get(value.strip().replace(" ", ""))
    if beats is None:
        raise UserError("timesig must be 2/4, 3/4, 4/4 or 6/8.")
    return beats


def normalize_key(value: str) -> str:
    """`c#m`, `Bb major`, `F# minor`, `G` → `C# minor`, `Bb major`, `F# minor`, `G major`."""
    key = canonical_key(value)
    if key is None:
        raise UserError(f'I don\'t know the key {value[:20]!r}; try something like key="F# minor" or key=Bb.')
    return key


def normalize_language(value: str) -> str:
    """A language code the model knows (`en`, `es`, `ja`, ...)."""
    code = value.strip().lower()
    if code not in LANGUAGES:
        raise UserError(f"I don't know the language {value[:12]!r}; use a code such as en, es, de, fr, ja or zh.")
    return code


def _first_word(text: str) -> tuple[str, str, str]:
    text = text.strip()
    if text[:1] and text[:1] in "\"'":  # ("" is in every string)
        quote = text[0]
        end = text.find(quote, 1)
        if end > 0:
            return text[1:end], " ", text[end + 1 :]
    return text.partition(" ")
