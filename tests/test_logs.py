"""The server's log set-up (consumer_api.logs.configure): buffered stderr, access lines on
or off."""
import logging
import os

import pytest

from consumer_api import logs
from consumer_api.config import Config


@pytest.fixture
def fresh_loggers():
    """Undo configure(): it sets up the process-wide consumer_api loggers."""
    yield
    for name in ("consumer_api", "consumer_api.access"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def capture_stderr(tmp_path):
    """Point fd 2 at a file for the duration (the handler dups fd 2 when created)."""
    path = tmp_path / "stderr.log"
    saved = os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 2)
    os.close(fd)
    return path, saved


def test_access_lines_can_be_turned_off(fresh_loggers, tmp_path):
    path, saved = capture_stderr(tmp_path)
    try:
        logs.configure(Config(data_dir=str(tmp_path), access_log=False))
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    assert not logging.getLogger("consumer_api.access").isEnabledFor(logging.INFO)
    assert logging.getLogger("consumer_api.engine").isEnabledFor(logging.INFO)


def test_warnings_are_written_at_once_and_info_lines_by_the_flush(fresh_loggers, tmp_path):
    path, saved = capture_stderr(tmp_path)
    try:
        logs.configure(Config(data_dir=str(tmp_path)))
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    handler = logging.getLogger("consumer_api").handlers[0]
    logging.getLogger("consumer_api.access").info("an access line")
    assert "an access line" not in path.read_text()  # buffered
    logging.getLogger("consumer_api.x").warning("a warning")
    text = path.read_text()
    assert "a warning" in text and "an access line" in text  # the warning flushed both
    logging.getLogger("consumer_api.access").info("another line")
    handler.flush_now()
    assert "another line" in path.read_text()
    assert f"[{os.getpid()}]" in path.read_text()
