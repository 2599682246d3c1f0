import logging
import os
import stat
import warnings

import pytest

from songbot.logs import KeyValueFormatter, configure

TOKEN = "123456:AAH-secret-token-value"


def record(message: str, **extra) -> logging.LogRecord:
    item = logging.LogRecord("songbot.test", logging.ERROR, __file__, 1, message, (), None)
    item.__dict__.update(extra)
    return item


def test_extras_become_key_values_and_tokens_are_blanked():
    formatter = KeyValueFormatter("%(levelname)s %(message)s", secrets=[TOKEN, ""])
    line = formatter.format(record(f"GET https://api.telegram.org/bot{TOKEN}/getMe failed", job=7, stage="x"))
    assert line == "ERROR GET https://api.telegram.org/bot<token>/getMe failed job=7 stage=x"


def test_tracebacks_are_scrubbed_too():
    formatter = KeyValueFormatter("%(message)s", secrets=[TOKEN])
    try:
        raise RuntimeError(f"The token `{TOKEN}` was rejected by the server.")
    except RuntimeError:
        import sys

        item = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), sys.exc_info())
    assert TOKEN not in formatter.format(item)


@pytest.fixture
def root_logger():
    """configure() rewires the root logger: put it back after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield root
    for handler in root.handlers:
        handler.close()
    root.handlers[:], root.level = handlers, level
    logging.captureWarnings(False)


def test_a_log_file_takes_the_lines_and_python_warnings(tmp_path, root_logger, capfd):
    path = tmp_path / "data" / "songbot.log"
    configure("INFO", secrets=[TOKEN], path=path)
    logging.getLogger("songbot.test").info("engine ready with %s", TOKEN, extra={"job": 3})
    warnings.warn("a library notice", UserWarning, stacklevel=1)
    text = path.read_text()
    assert "INFO songbot.test engine ready with <token> job=3" in text and TOKEN not in text
    assert "UserWarning: a library notice" in text
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_the_log_file_is_owner_only(tmp_path, root_logger):
    previous = os.umask(0o022)
    try:
        configure("INFO", path=tmp_path / "data" / "songbot.log")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "data" / "songbot.log").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700


NATIVE_CHILD = r"""
import io, sys
from pathlib import Path

import numpy as np
import soundfile as sf

from songbot import logs
from storage.media import audio

path = Path(sys.argv[1])
logs.configure("INFO", path=path)
logs.native_notes_to(path)
tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(96_000) / 48_000)).astype(np.float32)
broken = bytearray(audio.mp3_bytes(np.repeat(tone[:, None], 2, axis=1)))
for offset in range(3_000, 30_000, 500):  # headers no MPEG frame has: libmpg123 prints notes on fd 2
    broken[offset : offset + 4] = b"\xff\xfb\xff\xff"
sf.read(io.BytesIO(bytes(broken)))
print("the chat's line")
print("python's own stderr", file=sys.stderr)
"""


def test_native_libraries_notes_go_to_the_log_and_the_terminal_keeps_the_chat(tmp_path):
    import subprocess
    import sys

    from tests.helpers import REPO

    path = tmp_path / "data" / "songbot-chat.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", NATIVE_CHILD, str(path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "the chat's line\n"
    assert done.stderr == "python's own stderr\n"  # no libmpg123 note on the terminal
    assert "Illegal Audio-MPEG-Header" in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
