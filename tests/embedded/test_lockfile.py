import subprocess
import sys

import pytest

from consumer_api.embedded.lockfile import DataDirLock
from consumer_api.errors import DataDirLocked

HOLD = """
import sys, time
from consumer_api.embedded.lockfile import DataDirLock
lock = DataDirLock(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
"""


def test_second_process_fails_fast_with_a_clear_message(data_dir):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, data_dir], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataDirLocked) as err:
            DataDirLock(data_dir)
        assert "in use by another process" in str(err.value)
        assert str(holder.pid) in str(err.value)
    finally:
        holder.kill()
        holder.wait()
    # the kernel released the lock of the killed holder: no stale lock
    DataDirLock(data_dir).release()


def test_lock_is_exclusive_within_a_process_too(data_dir):
    first = DataDirLock(data_dir)
    try:
        with pytest.raises(DataDirLocked):
            DataDirLock(data_dir)
    finally:
        first.release()
    DataDirLock(data_dir).release()
