"""The one way tests wait for something another thread or process does.

``wait_until(condition, what)`` calls ``condition()`` until it returns something true and
returns that, checking every ``every`` seconds for at most ``timeout`` real seconds, then
fails naming ``what``. It returns as soon as the condition holds, so it is never a fixed
sleep; use it only where no event can be waited on (another process's state, a gauge).
"""
from __future__ import annotations

import time

#: real seconds any wait may take before the test fails
BOUND_S = 10.0


def wait_until(condition, what: str = "condition", timeout: float = BOUND_S,
               every: float = 0.002):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(every)
