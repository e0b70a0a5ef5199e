"""Server logging: where ``consumer_api.*`` loggers write when run under gunicorn.

``configure(config)`` sends them to stderr (which gunicorn captures) in the format of
gunicorn's own lines, at INFO. Library code only ever calls ``logging.getLogger(__name__)``;
tests keep pytest's handlers because only the server entry point calls this.
"""
from __future__ import annotations

import logging

from consumer_api.config import Config

PLAIN = "[%(asctime)s] [%(process)d] [%(levelname)s] %(name)s: %(message)s"


def configure(config: Config) -> None:
    logger = logging.getLogger("consumer_api")
    if logger.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(PLAIN, "%Y-%m-%d %H:%M:%S %z"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
