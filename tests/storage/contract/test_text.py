"""User text cleaned before storage, and the database layer's guards (NUL on PostgreSQL, hidden parameters)."""

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from storage.contract.spec import JobSpec
from storage.contract.text import clean_line, clean_lines, without_nul
from storage.contract.types import UserRef
from storage.db import utcnow
from storage.models import users_table
from storage.queue.accounts import Accounts


@pytest.mark.parametrize(
    ("given", "line", "lines"),
    [
        ("rain\x00 at night", "rain at night", "rain at night"),
        ("a\x07b\x1b[31mc\x7f\x85d", "ab[31mcd", "ab[31mcd"),
        ("verse\r\none\ttwo\rthree", "verse one two three", "verse\none\ttwo\nthree"),
        ("  ☔ 雨 ✨ \u200d ", "☔ 雨 ✨", "  ☔ 雨 ✨  "),  # a joiner joining nothing is a format character
        ("lone \ud800 surrogate", "lone  surrogate", "lone  surrogate"),
    ],
)
def test_control_characters_are_removed(given, line, lines):
    assert clean_line(given) == line
    assert clean_lines(given) == lines
    clean_lines(given).encode("utf-8")  # nothing left that UTF-8 (and so PostgreSQL) refuses


@pytest.mark.parametrize(
    ("given", "cleaned"),
    [
        ("evil\u202egnp.mp3", "evilgnp.mp3"),  # right-to-left override: "evil3pm.png" on screen
        ("\u2066isolated\u2069 \u2067rtl\u2069", "isolated rtl"),
        ("\ufeffbom first", "bom first"),
        ("zero\u200bwidth\u200cnon\u200djoin\u2060word\u00adhyphen", "zerowidthnonjoinwordhyphen"),
        ("\U000e0041tag characters\U000e007f", "tag characters"),
    ],
)
def test_format_characters_are_removed(given, cleaned):
    assert clean_line(given) == cleaned and clean_lines(given) == cleaned
    assert JobSpec.build(caption=given, duration_s=10).caption == cleaned


def test_a_joiner_inside_an_emoji_sequence_is_kept():
    family, coder, rainbow_flag = "👨\u200d👩\u200d👧", "👩🏽\u200d💻", "🏳\ufe0f\u200d🌈"
    for emoji in (family, coder, rainbow_flag):
        assert clean_line(f"{emoji} song") == f"{emoji} song"
    assert clean_line("a\u200d👩 b\u200d c") == "a👩 b c"  # beside a letter it joins nothing we draw


def test_a_display_name_loses_its_format_characters(db):
    user = Accounts(db).ensure(UserRef("console", "u1", "\u202eadmin\u202c"), utcnow())
    assert user.display_name == "admin"


def test_without_nul_reaches_into_statement_parameters():
    params = [{"caption": "a\x00b", "n": 3, "meta": ("x\x00", None)}, {"caption": "plain"}]
    assert without_nul(params) == [{"caption": "ab", "n": 3, "meta": ("x", None)}, {"caption": "plain"}]


def test_a_spec_never_holds_control_characters():
    spec = JobSpec.build(caption="rain\x00\x1b night", lyrics="la\x00\nla", duration_s=10)
    assert (spec.caption, spec.lyrics) == ("rain night", "la\nla")
    stored = JobSpec.from_stored({"caption": "old\x00", "duration_s": 10})
    assert stored.caption == "old"


def test_a_nul_never_reaches_postgresql(db):
    # Past every cleaning (here a raw insert of a display name), the PostgreSQL engine drops NULs itself.
    with db.begin() as conn:
        conn.execute(
            users_table.insert().values(
                platform="console", platform_id="x", display_name="A\x00nn", created_at=utcnow()
            )
        )
        stored = conn.execute(select(users_table.c.display_name)).scalar_one()
    assert stored == ("Ann" if db.dialect.name == "postgresql" else "A\x00nn")


def test_display_names_are_cleaned(db):
    user = Accounts(db).ensure(UserRef("telegram", "7", "Ann\x00\n\x1bie"), utcnow())
    assert user.display_name == "Ann ie"


def test_database_errors_never_show_their_parameters(db):
    Accounts(db).ensure(UserRef("console", "dup", "Ann"), utcnow())
    with pytest.raises(IntegrityError) as caught, db.begin() as conn:
        conn.execute(
            users_table.insert().values(
                platform="console", platform_id="dup", display_name="my secret lyrics", created_at=utcnow()
            )
        )
    assert "my secret lyrics" not in str(caught.value)
    assert "hidden" in str(caught.value)


def test_raw_sql_is_unaffected(db):
    with db.begin() as conn:
        assert conn.execute(text("SELECT :value"), {"value": "plain"}).scalar_one() == "plain"
