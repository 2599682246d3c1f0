import logging

from songbot.logs import KeyValueFormatter

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
