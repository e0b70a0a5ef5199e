"""The wall clock every layer stamps records and responses with."""
from __future__ import annotations

import time


def wall_clock_ms() -> int:
    """Now, in epoch milliseconds."""
    return int(time.time() * 1000)
