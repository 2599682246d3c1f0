"""The song buttons: each action's custom id carries the song id, and its template reads it back."""

import pytest

from bot.discord.components import LyricsButton, RerollButton
from bot.discord.edits import ExtendButton, RepaintButton


@pytest.mark.parametrize(
    ("button", "action", "emoji"),
    [
        (RerollButton, "reroll", "🎲"),
        (LyricsButton, "lyrics", "📝"),
        (RepaintButton, "repaint", "✏️"),
        (ExtendButton, "extend", "➕"),
    ],
)
def test_custom_ids_carry_the_song_id_and_match_only_their_own_template(button, action, emoji):
    made = button(42)
    assert made.item.custom_id == f"songbot:{action}:42" and str(made.item.emoji) == emoji
    assert button.__discord_ui_compiled_template__.fullmatch("songbot:" + action + ":42")["job"] == "42"
    others = {RerollButton, LyricsButton, RepaintButton, ExtendButton} - {button}
    assert not any(other.__discord_ui_compiled_template__.fullmatch(made.item.custom_id) for other in others)


def test_a_history_button_takes_its_own_label():
    assert RerollButton(7, label="#7").item.label == "#7" and RerollButton(7).item.label == "Re-roll"
