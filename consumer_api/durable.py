"""Making a change to a directory durable (a file created, renamed or removed in it)."""
from __future__ import annotations

import os


def fsync_dir(path: str) -> None:
    """fsync the directory ``path`` itself, so its entries survive a machine crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
