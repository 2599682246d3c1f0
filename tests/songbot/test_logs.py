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
